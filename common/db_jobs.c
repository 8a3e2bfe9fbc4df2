#include "db_jobs.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "proto.h"
#include "xalloc.h"

/* ms since the epoch as a timestamptz, from a text parameter */
#define TS(p) "('epoch'::timestamptz + (" p ")::bigint * interval '1 millisecond')"
/* a timestamptz as ms since the epoch */
#define MS(col) "(extract(epoch from " col ") * 1000)::bigint"

static void i64s(int64_t v, char out[24])
{
    snprintf(out, 24, "%lld", (long long)v);
}

/* Runs a statement whose result is not needed. */
static int run(db_t *d, const char *sql, int n, const char *const *params)
{
    PGresult *r = db_exec(d, sql, n, params);
    if (!r) return PX_EBACKEND;
    PQclear(r);
    return 0;
}

/* Ends a failed transaction; the error of the statement that failed stays in
 * errstr only if ROLLBACK succeeds quietly, so keep it aside. */
static int rollback(db_t *d, int rc)
{
    PGresult *r = db_exec(d, "ROLLBACK", 0, NULL);
    if (r) PQclear(r);
    return rc;
}

static int64_t be64(const char *p)
{
    const unsigned char *u = (const unsigned char *)p;
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | u[i];
    return (int64_t)v;
}

/* Copies a binary column value into a fresh buffer (gives: free()). */
static int take_bytes(PGresult *r, int row, int col, uint8_t **out, size_t *len)
{
    size_t n = (size_t)PQgetlength(r, row, col);
    uint8_t *b = malloc(n ? n : 1); /* job-sized: fail, do not abort */
    if (!b) return -ENOMEM;
    memcpy(b, PQgetvalue(r, row, col), n);
    *out = b;
    *len = n;
    return 0;
}

/* The one bytea column of the row sql selects by param (borrowed):
 * *out (gives: free()), *len; PX_ENOTFOUND when there is no row. */
static int one_bytea(db_t *d, const char *sql, const char *param, uint8_t **out, size_t *len)
{
    *out = NULL;
    const char *p[] = {param};
    PGresult *r = db_exec_ex(d, sql, 1, p, NULL, NULL, 1);
    if (!r) return PX_EBACKEND;
    int rc = PQntuples(r) == 1 ? take_bytes(r, 0, 0, out, len) : PX_ENOTFOUND;
    PQclear(r);
    return rc;
}

/* ------------------------------------------------------------------ creating */

int db_job_insert(db_t *d, const char *id, const char *kind, const char *params, int64_t slot,
                  const char *requested_by, bool *inserted)
{
    char slot_s[24];
    i64s(slot, slot_s);
    const char *p[] = {id, kind, params ? params : "{}", slot >= 0 ? slot_s : NULL, requested_by};
    PGresult *r = db_exec(d,
                          "INSERT INTO jobs (id, kind, params, slot, requested_by) "
                          "VALUES ($1::uuid, $2, $3::jsonb, $4::bigint, $5::uuid) "
                          "ON CONFLICT (kind, slot) WHERE slot IS NOT NULL DO NOTHING",
                          5, p);
    if (!r) return PX_EBACKEND;
    if (inserted) *inserted = strcmp(PQcmdTuples(r), "1") == 0;
    PQclear(r);
    return 0;
}

int db_job_insert_published(db_t *d, const char *id, const char *kind)
{
    const char *p[] = {id, kind};
    return run(d, "INSERT INTO jobs (id, kind, published_at) VALUES ($1::uuid, $2, now())", 2, p);
}

int db_job_unpublish(db_t *d, const char *id)
{
    const char *p[] = {id};
    return run(d, "UPDATE jobs SET published_at = NULL WHERE id = $1::uuid", 1, p);
}

int db_job_insert_admin(db_t *d, const char *id, const char *kind, const char *admin_id,
                        const char *action_type)
{
    if (run(d, "BEGIN", 0, NULL)) return PX_EBACKEND;
    const char *p1[] = {id, kind, admin_id};
    const char *p2[] = {admin_id, action_type, id};
    if (run(d, "INSERT INTO jobs (id, kind, requested_by) VALUES ($1::uuid, $2, $3::uuid)", 3,
            p1) ||
        run(d,
            "INSERT INTO admin_actions (admin_user_id, action_type, details) "
            "VALUES ($1::uuid, $2, jsonb_build_object('jobId', $3::text))",
            3, p2) ||
        run(d, "COMMIT", 0, NULL))
        return rollback(d, PX_EBACKEND);
    return 0;
}

/* ------------------------------------------------------------------ relay */

int db_jobs_publish_begin(db_t *d, int max, char (*ids)[37], char (*kinds)[16], int *n)
{
    *n = 0;
    if (run(d, "BEGIN", 0, NULL)) return PX_EBACKEND;
    char lim[24];
    i64s(max, lim);
    const char *p[] = {lim};
    PGresult *r = db_exec(d,
                          "SELECT id::text, kind FROM jobs WHERE published_at IS NULL "
                          "ORDER BY created_at LIMIT $1::int FOR UPDATE SKIP LOCKED",
                          1, p);
    if (!r) return rollback(d, PX_EBACKEND);
    int rows = PQntuples(r);
    for (int i = 0; i < rows && i < max; i++) {
        snprintf(ids[i], 37, "%s", PQgetvalue(r, i, 0));
        snprintf(kinds[i], 16, "%s", PQgetvalue(r, i, 1));
        (*n)++;
    }
    PQclear(r);
    return 0;
}

int db_job_mark_published(db_t *d, const char *id)
{
    const char *p[] = {id};
    return run(d, "UPDATE jobs SET published_at = now() WHERE id = $1::uuid", 1, p);
}

int db_jobs_publish_end(db_t *d, bool commit)
{
    if (!commit) return rollback(d, 0);
    if (run(d, "COMMIT", 0, NULL)) return rollback(d, PX_EBACKEND);
    return 0;
}

/* ------------------------------------------------------------------ listener */

struct db_listener {
    char *url;
    int timeout_ms;
    PGconn *c; /* NULL until connected and listening */
};

db_listener_t *db_listener_new(const char *url, int timeout_ms)
{
    db_listener_t *l = xcalloc(1, sizeof *l);
    l->url = xstrdup(url);
    l->timeout_ms = timeout_ms;
    return l;
}

void db_listener_free(db_listener_t *l)
{
    if (!l) return;
    if (l->c) PQfinish(l->c);
    free(l->url);
    free(l);
}

static bool listener_ready(db_listener_t *l)
{
    if (l->c && PQstatus(l->c) == CONNECTION_OK) return true;
    if (l->c) PQfinish(l->c);
    char timeout[16];
    snprintf(timeout, sizeof timeout, "%d", (l->timeout_ms + 999) / 1000);
    const char *keys[] = {"dbname", "connect_timeout", "application_name", NULL};
    const char *vals[] = {l->url, timeout, "place-jobs-listener", NULL};
    l->c = PQconnectdbParams(keys, vals, 1);
    PGresult *r =
        l->c && PQstatus(l->c) == CONNECTION_OK ? PQexec(l->c, "LISTEN " DB_JOBS_CHANNEL) : NULL;
    bool ok = r && PQresultStatus(r) == PGRES_COMMAND_OK;
    PQclear(r);
    if (!ok && l->c) {
        PQfinish(l->c);
        l->c = NULL;
    }
    return ok;
}

int db_listener_wait(db_listener_t *l, int wake_fd, int timeout_ms)
{
    bool ok = listener_ready(l);
    struct pollfd p[2] = {{.fd = wake_fd, .events = POLLIN}, {.fd = -1, .events = POLLIN}};
    if (ok) p[1].fd = PQsocket(l->c);
    int n = poll(p, 2, timeout_ms);
    if (n <= 0) return ok ? 0 : PX_EBACKEND;
    if (ok && p[1].revents) {
        if (PQconsumeInput(l->c) == 0) {
            PQfinish(l->c); /* reconnect next time */
            l->c = NULL;
            return PX_EBACKEND;
        }
        PGnotify *nf;
        while ((nf = PQnotifies(l->c)) != NULL)
            PQfreemem(nf);
    }
    return 1;
}

/* ------------------------------------------------------------------ running */

void db_job_deinit(db_job_t *j)
{
    free(j->params);
    free(j->error);
    free(j->result);
    memset(j, 0, sizeof *j);
}

#define JOB_COLS                                                                                   \
    "id::text, kind, status, progress, attempts, params::text, error, result::text, " MS(          \
        "created_at") ", " MS("updated_at")

static void job_from_row(PGresult *r, int row, db_job_t *out)
{
    memset(out, 0, sizeof *out);
    snprintf(out->id, sizeof out->id, "%s", PQgetvalue(r, row, 0));
    snprintf(out->kind, sizeof out->kind, "%s", PQgetvalue(r, row, 1));
    snprintf(out->status, sizeof out->status, "%s", PQgetvalue(r, row, 2));
    out->progress = strtod(PQgetvalue(r, row, 3), NULL);
    out->attempts = atoi(PQgetvalue(r, row, 4));
    out->params = xstrdup(PQgetvalue(r, row, 5));
    out->error = PQgetisnull(r, row, 6) ? NULL : xstrdup(PQgetvalue(r, row, 6));
    out->result = PQgetisnull(r, row, 7) ? NULL : xstrdup(PQgetvalue(r, row, 7));
    out->created_ms = strtoll(PQgetvalue(r, row, 8), NULL, 10);
    out->updated_ms = strtoll(PQgetvalue(r, row, 9), NULL, 10);
}

int db_job_get(db_t *d, const char *id, db_job_t *out)
{
    memset(out, 0, sizeof *out);
    const char *p[] = {id};
    PGresult *r = db_exec(d, "SELECT " JOB_COLS " FROM jobs WHERE id = $1::uuid", 1, p);
    if (!r) return PX_EBACKEND;
    int rc = PQntuples(r) == 1 ? 0 : PX_ENOTFOUND;
    if (rc == 0) job_from_row(r, 0, out);
    PQclear(r);
    return rc;
}

int db_job_start(db_t *d, const char *id, db_job_t *out)
{
    memset(out, 0, sizeof *out);
    const char *p[] = {id};
    /* The old status comes from the row as it was before the UPDATE (a
     * self-join on the same snapshot of the table). */
    PGresult *r = db_exec(
        d,
        "UPDATE jobs j SET status = 'running', attempts = j.attempts + 1, "
        "  started_at = coalesce(j.started_at, now()), updated_at = now() "
        "FROM jobs old WHERE j.id = $1::uuid AND old.id = j.id "
        "  AND j.status IN ('queued', 'running') "
        "RETURNING j.id::text, j.kind, old.status, j.progress, j.attempts, "
        "  j.params::text, j.error, j.result::text, " MS("j.created_at") ", " MS("j.updated_at"),
        1, p);
    if (!r) return PX_EBACKEND;
    if (PQntuples(r) == 1) {
        job_from_row(r, 0, out);
        PQclear(r);
        return 0;
    }
    PQclear(r);
    return db_job_get(d, id, out); /* finished, or no such row */
}

int db_job_progress(db_t *d, const char *id, double progress)
{
    char pr[32];
    snprintf(pr, sizeof pr, "%.4f", progress < 0 ? 0.0 : progress > 1 ? 1.0 : progress);
    const char *p[] = {id, pr};
    return run(d,
               "UPDATE jobs SET progress = $2::real, updated_at = now() "
               "WHERE id = $1::uuid AND status = 'running'",
               2, p);
}

int db_job_failed(db_t *d, const char *id, const char *err, bool final)
{
    const char *p[] = {id, err, final ? "failed" : "queued"};
    return run(d,
               "UPDATE jobs SET status = $3, error = $2, updated_at = now(), "
               "  finished_at = CASE WHEN $3 = 'failed' THEN now() END "
               "WHERE id = $1::uuid AND status <> 'done'",
               3, p);
}

int db_job_done(db_t *d, const char *id, const char *result)
{
    const char *p[] = {id, result};
    return run(d,
               "UPDATE jobs SET status = 'done', progress = 1, result = $2::jsonb, "
               "  updated_at = now(), finished_at = now() WHERE id = $1::uuid",
               2, p);
}

int db_job_lock(db_t *d, const char *id, bool *got)
{
    const char *p[] = {id};
    PGresult *r = db_exec(d, "SELECT pg_try_advisory_lock(hashtextextended($1::text, 7))", 1, p);
    if (!r) return PX_EBACKEND;
    *got = PQgetvalue(r, 0, 0)[0] == 't';
    PQclear(r);
    return 0;
}

int db_job_unlock(db_t *d, const char *id)
{
    const char *p[] = {id};
    return run(d, "SELECT pg_advisory_unlock(hashtextextended($1::text, 7))", 1, p);
}

/* ------------------------------------------------------------------ snapshots */

int db_snapshot_by_job(db_t *d, const char *job_id, int64_t *id)
{
    const char *p[] = {job_id};
    PGresult *r = db_exec(d, "SELECT id FROM canvas_snapshots WHERE job_id = $1::uuid", 1, p);
    if (!r) return PX_EBACKEND;
    int rc = PQntuples(r) == 1 ? 0 : PX_ENOTFOUND;
    if (rc == 0) *id = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
    PQclear(r);
    return rc;
}

int db_snapshot_job_done(db_t *d, const char *job_id, int64_t id)
{
    char result[64];
    snprintf(result, sizeof result, "{\"snapshotId\":%lld}", (long long)id);
    return db_job_done(d, job_id, result);
}

int db_snapshot_store(db_t *d, const db_snapshot_row_t *row, int64_t *id, bool *inserted)
{
    *inserted = false;
    char seq[24], w[24], h[24], size[24];
    i64s(row->seq, seq);
    i64s(row->width, w);
    i64s(row->height, h);
    i64s((int64_t)row->png_len, size);
    if (row->png_len > 0x7fffffff || row->canvas_z_len > 0x7fffffff) return PX_ETOOBIG;
    const char *p[] = {row->job_id, seq, w, h, (const char *)row->png, (const char *)row->canvas_z,
                       size};
    int lens[] = {0, 0, 0, 0, (int)row->png_len, (int)row->canvas_z_len, 0};
    int fmts[] = {0, 0, 0, 0, 1, 1, 0};
    if (run(d, "BEGIN", 0, NULL)) return PX_EBACKEND;
    PGresult *r = db_exec_ex(
        d,
        "INSERT INTO canvas_snapshots (job_id, seq, width, height, png, canvas_z, size_bytes) "
        "VALUES ($1::uuid, $2::bigint, $3::int, $4::int, $5::bytea, $6::bytea, $7::int) "
        "ON CONFLICT (job_id) DO NOTHING RETURNING id",
        7, p, lens, fmts, 0);
    if (!r) return rollback(d, PX_EBACKEND);
    if (PQntuples(r) == 1) {
        *id = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
        *inserted = true;
    }
    PQclear(r);
    if (!*inserted && db_snapshot_by_job(d, row->job_id, id)) return rollback(d, PX_EBACKEND);
    if (db_snapshot_job_done(d, row->job_id, *id) || run(d, "COMMIT", 0, NULL))
        return rollback(d, PX_EBACKEND);
    return 0;
}

int db_snapshot_list(db_t *d, int limit, int64_t before, json_t **out, int64_t *next)
{
    *out = NULL;
    *next = 0;
    char lim[24], bef[24];
    i64s(limit + 1, lim); /* one more tells whether there is a next page */
    i64s(before, bef);
    const char *p[] = {lim, before > 0 ? bef : NULL};
    PGresult *r = db_exec(
        d,
        "SELECT id, seq, width, height, size_bytes, " MS(
            "created_at") " FROM canvas_snapshots WHERE ($2::bigint IS NULL OR id < $2::bigint) "
                          "ORDER BY id DESC LIMIT $1::int",
        2, p);
    if (!r) return PX_EBACKEND;
    json_t *arr = json_array();
    int n = PQntuples(r);
    for (int i = 0; i < n && i < limit; i++) {
        char when[32];
        proto_time_format(strtoll(PQgetvalue(r, i, 5), NULL, 10), when);
        json_array_append_new(
            arr,
            json_pack("{s:I,s:I,s:i,s:i,s:I,s:s}", "id",
                      (json_int_t)strtoll(PQgetvalue(r, i, 0), NULL, 10), "seq",
                      (json_int_t)strtoll(PQgetvalue(r, i, 1), NULL, 10), "width",
                      atoi(PQgetvalue(r, i, 2)), "height", atoi(PQgetvalue(r, i, 3)), "sizeBytes",
                      (json_int_t)strtoll(PQgetvalue(r, i, 4), NULL, 10), "createdAt", when));
    }
    if (n > limit && limit > 0) *next = strtoll(PQgetvalue(r, limit - 1, 0), NULL, 10);
    PQclear(r);
    *out = arr;
    return 0;
}

int db_snapshot_png(db_t *d, int64_t id, uint8_t **png, size_t *len)
{
    char ids[24];
    i64s(id, ids);
    return one_bytea(d, "SELECT png FROM canvas_snapshots WHERE id = $1::bigint", ids, png, len);
}

int db_snapshot_at_or_before(db_t *d, int width, int height, int64_t max_seq, uint8_t **canvas,
                             int64_t *seq)
{
    *canvas = NULL;
    char ws[24], hs[24], ms[24];
    i64s(width, ws);
    i64s(height, hs);
    i64s(max_seq, ms);
    const char *p[] = {ws, hs, ms};
    /* binary result: seq arrives as 8 big-endian bytes, canvas_z unescaped */
    PGresult *r = db_exec_ex(d,
                             "SELECT seq, canvas_z FROM canvas_snapshots WHERE width = $1::int "
                             "AND height = $2::int AND seq <= $3::bigint "
                             "ORDER BY seq DESC, id DESC LIMIT 1",
                             3, p, NULL, NULL, 1);
    if (!r) return PX_EBACKEND;
    if (PQntuples(r) == 0) {
        PQclear(r);
        return PX_ENOTFOUND;
    }
    if (PQgetlength(r, 0, 0) != 8) {
        PQclear(r);
        return PX_EPROTO;
    }
    *seq = be64(PQgetvalue(r, 0, 0));
    uLongf n = (uLongf)width * (uLongf)height;
    uint8_t *c = malloc(n ? n : 1);
    if (!c) {
        PQclear(r);
        return -ENOMEM;
    }
    int zrc = uncompress(c, &n, (const Bytef *)PQgetvalue(r, 0, 1), (uLong)PQgetlength(r, 0, 1));
    PQclear(r);
    if (zrc != Z_OK || n != (uLongf)width * (uLongf)height) {
        free(c);
        return PX_EPROTO;
    }
    *canvas = c;
    return 0;
}

/* ------------------------------------------------------------------ timelapses */

int db_timelapse_store(db_t *d, const db_timelapse_row_t *row)
{
    if (row->len > 0x7fffffff) return PX_ETOOBIG;
    char size[24], fr[24], fps[24], w[24], h[24];
    i64s((int64_t)row->len, size);
    i64s(row->frames, fr);
    i64s(row->fps, fps);
    i64s(row->width, w);
    i64s(row->height, h);
    const char *p[] = {row->job_id, (const char *)row->apng, size, fr, fps, w, h};
    int lens[] = {0, (int)row->len, 0, 0, 0, 0, 0};
    int fmts[] = {0, 1, 0, 0, 0, 0, 0};
    if (run(d, "BEGIN", 0, NULL)) return PX_EBACKEND;
    PGresult *r = db_exec_ex(d,
                             "INSERT INTO timelapses (job_id, apng, size_bytes, frames, fps, "
                             "width, height) VALUES ($1::uuid, $2::bytea, $3::bigint, $4::int, "
                             "$5::int, $6::int, $7::int) ON CONFLICT (job_id) DO NOTHING",
                             7, p, lens, fmts, 0);
    if (!r) return rollback(d, PX_EBACKEND);
    PQclear(r);
    char result[160];
    snprintf(result, sizeof result,
             "{\"frames\":%d,\"fps\":%d,\"width\":%d,\"height\":%d,\"sizeBytes\":%zu}", row->frames,
             row->fps, row->width, row->height, row->len);
    if (db_job_done(d, row->job_id, result) || run(d, "COMMIT", 0, NULL))
        return rollback(d, PX_EBACKEND);
    return 0;
}

int db_timelapse_apng(db_t *d, const char *job_id, uint8_t **data, size_t *len)
{
    return one_bytea(d, "SELECT apng FROM timelapses WHERE job_id = $1::uuid", job_id, data, len);
}

/* ------------------------------------------------------------------ events */

static int one_i64(db_t *d, const char *sql, int n, const char *const *params, int64_t *out)
{
    PGresult *r = db_exec(d, sql, n, params);
    if (!r) return PX_EBACKEND;
    *out = PQntuples(r) == 1 && !PQgetisnull(r, 0, 0) ? strtoll(PQgetvalue(r, 0, 0), NULL, 10) : 0;
    PQclear(r);
    return 0;
}

int db_events_seq_at(db_t *d, int64_t time_ms, int64_t *seq)
{
    char t[24];
    i64s(time_ms, t);
    const char *p[] = {t};
    /* created_at bounds the partitions scanned; seq order picks the last */
    return one_i64(
        d,
        "SELECT seq FROM pixel_events WHERE created_at <= " TS("$1") " ORDER BY seq DESC LIMIT 1",
        1, p, seq);
}

int db_events_min_seq(db_t *d, int64_t *seq)
{
    return one_i64(d, "SELECT seq FROM pixel_events ORDER BY seq LIMIT 1", 0, NULL, seq);
}

#define SCAN_CHUNK 50000

int db_events_scan_range(db_t *d, int64_t after_seq, int64_t until_ms, db_event_fn fn, void *arg)
{
    int64_t last = after_seq;
    char until[24], lim[24];
    i64s(until_ms, until);
    i64s(SCAN_CHUNK, lim);
    for (;;) {
        char ls[24];
        i64s(last, ls);
        const char *p[] = {ls, until, lim};
        PGresult *r =
            db_exec(d,
                    "SELECT seq, x, y, color, " MS(
                        "created_at") " FROM pixel_events WHERE seq > $1::bigint "
                                      "AND created_at <= " TS("$2") " ORDER BY seq LIMIT $3::int",
                    3, p);
        if (!r) return PX_EBACKEND;
        int n = PQntuples(r);
        for (int i = 0; i < n; i++) {
            canvas_event_t ev;
            memset(&ev, 0, sizeof ev);
            ev.seq = strtoll(PQgetvalue(r, i, 0), NULL, 10);
            ev.x = atoi(PQgetvalue(r, i, 1));
            ev.y = atoi(PQgetvalue(r, i, 2));
            ev.color = atoi(PQgetvalue(r, i, 3));
            ev.time_ms = strtoll(PQgetvalue(r, i, 4), NULL, 10);
            last = ev.seq;
            int rc = fn(arg, &ev);
            if (rc) {
                PQclear(r);
                return rc;
            }
        }
        PQclear(r);
        if (n < SCAN_CHUNK) return 0;
    }
}

int db_resets_range(db_t *d, int64_t after_seq, int64_t until_ms, db_reset_t **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    char after[24], until[24];
    i64s(after_seq, after);
    i64s(until_ms, until);
    const char *p[] = {after, until_ms == INT64_MAX ? NULL : until}; /* NULL: any time */
    PGresult *r = db_exec(
        d,
        "SELECT s, " MS("created_at") " FROM (SELECT (details->>'seq')::bigint s, created_at "
        "FROM admin_actions WHERE action_type = 'reset_canvas' "
        "AND jsonb_typeof(details->'seq') = 'number') a WHERE s > $1::bigint "
        "AND ($2::bigint IS NULL OR created_at <= " TS("$2") ") ORDER BY s",
        2, p);
    if (!r) return PX_EBACKEND;
    int rows = PQntuples(r);
    if (rows > 0) {
        *out = xcalloc((size_t)rows, sizeof **out);
        for (int i = 0; i < rows; i++) {
            (*out)[i].seq = strtoll(PQgetvalue(r, i, 0), NULL, 10);
            (*out)[i].time_ms = strtoll(PQgetvalue(r, i, 1), NULL, 10);
        }
        *n = (size_t)rows;
    }
    PQclear(r);
    return 0;
}

/* ------------------------------------------------------------------ retention */

int db_retention_events(db_t *d, int64_t cutoff_ms, json_t **dropped)
{
    *dropped = NULL;
    char c[24];
    i64s(cutoff_ms, c);
    const char *p[] = {c};
    PGresult *r = db_exec(d, "SELECT place_drop_partitions_before(" TS("$1") ")", 1, p);
    if (!r) return PX_EBACKEND;
    json_t *arr = json_array();
    for (int i = 0; i < PQntuples(r); i++)
        json_array_append_new(arr, json_string(PQgetvalue(r, i, 0)));
    PQclear(r);
    *dropped = arr;
    return 0;
}

/* Runs a DELETE whose $1 is cutoff_ms; *deleted (out) how many rows went. */
static int delete_before(db_t *d, const char *sql, int64_t cutoff_ms, int64_t *deleted)
{
    char c[24];
    i64s(cutoff_ms, c);
    const char *p[] = {c};
    PGresult *r = db_exec(d, sql, 1, p);
    if (!r) return PX_EBACKEND;
    *deleted = strtoll(PQcmdTuples(r), NULL, 10);
    PQclear(r);
    return 0;
}

int db_retention_snapshots(db_t *d, int64_t cutoff_ms, int64_t *deleted)
{
    return delete_before(d,
                         "DELETE FROM canvas_snapshots WHERE created_at < " TS(
                             "$1") " AND id NOT IN (SELECT DISTINCT ON (width, height) id "
                                   "  FROM canvas_snapshots ORDER BY width, height, seq DESC, "
                                   "id DESC)",
                         cutoff_ms, deleted);
}

int db_retention_jobs(db_t *d, int64_t cutoff_ms, int64_t *deleted)
{
    return delete_before(d,
                         "DELETE FROM jobs WHERE status IN ('done', 'failed') "
                         "AND finished_at < " TS("$1"),
                         cutoff_ms, deleted);
}
