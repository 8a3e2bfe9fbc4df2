#include "snap.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zlib.h>

#include "img_png.h"

/* TODO(worker): switch these to rds_ / db_ once common/rds.c and db.c land. */

static int elapsed_ms(const struct timespec *since)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (int)((now.tv_sec - since->tv_sec) * 1000 + (now.tv_nsec - since->tv_nsec) / 1000000);
}

/* ---------------------------------------------------------------------------
 * Redis: canvas and seq in one MULTI, so the seq is exactly the one of the
 * bytes (a placement is one script: it cannot land between the two GETs). */

static int redis_failed(redisContext *c, const char *what, char *err, size_t errlen)
{
    snprintf(err, errlen, "redis %s: %s", what, c->err ? c->errstr : "unexpected reply");
    return PX_EBACKEND;
}

/* Gives *reply (freeReplyObject) holding the EXEC array [canvas, seq]. */
static int read_canvas(redisContext *c, redisReply **reply, char *err, size_t errlen)
{
    *reply = NULL;
    if (redisAppendCommand(c, "MULTI") != REDIS_OK ||
        redisAppendCommand(c, "GET canvas:main") != REDIS_OK ||
        redisAppendCommand(c, "GET canvas:seq") != REDIS_OK ||
        redisAppendCommand(c, "EXEC") != REDIS_OK)
        return redis_failed(c, "append", err, errlen);

    /* Read all four replies even after a bad one, so the pipeline stays in step. */
    redisReply *r[4] = {NULL, NULL, NULL, NULL};
    int rc = 0;
    for (int i = 0; i < 4; i++) {
        void *p = NULL;
        if (redisGetReply(c, &p) != REDIS_OK) {
            rc = redis_failed(c, "MULTI/GET/EXEC", err, errlen);
            break;
        }
        r[i] = p;
    }
    if (rc == 0) {
        for (int i = 0; i < 4 && rc == 0; i++)
            if (r[i]->type == REDIS_REPLY_ERROR) {
                snprintf(err, errlen, "redis MULTI/GET/EXEC: %s", r[i]->str);
                rc = PX_EBACKEND;
            }
        if (rc == 0 && (r[3]->type != REDIS_REPLY_ARRAY || r[3]->elements != 2))
            rc = redis_failed(c, "EXEC", err, errlen);
    }
    for (int i = 0; i < 3; i++)
        if (r[i]) freeReplyObject(r[i]);
    if (rc == 0)
        *reply = r[3];
    else if (r[3])
        freeReplyObject(r[3]);
    return rc;
}

/* ---------------------------------------------------------------------------
 * PostgreSQL */

static int pg_failed(PGconn *pg, PGresult *res, const char *what, char *err, size_t errlen)
{
    const char *msg = res ? PQresultErrorMessage(res) : PQerrorMessage(pg);
    if (!msg || !*msg) msg = PQerrorMessage(pg);
    /* libpq messages end in a newline */
    int n = (int)strcspn(msg, "\n");
    snprintf(err, errlen, "postgres %s: %.*s", what, n, msg);
    if (res) PQclear(res);
    return PX_EBACKEND;
}

static int snapshot_exists(PGconn *pg, const char *job_id, bool *exists, char *err, size_t errlen)
{
    const char *params[1] = {job_id};
    PGresult *res = PQexecParams(pg, "SELECT 1 FROM canvas_snapshots WHERE job_id = $1::uuid", 1,
                                 NULL, params, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) return pg_failed(pg, res, "select", err, errlen);
    *exists = PQntuples(res) > 0;
    PQclear(res);
    return 0;
}

/* One statement in autocommit: when PQexecParams returns COMMAND_OK the row
 * is committed. A redelivered job hits ON CONFLICT and inserts nothing. */
static int insert_snapshot(PGconn *pg, const char *job_id, int64_t seq, int w, int h,
                           const uint8_t *png, size_t png_len, const uint8_t *cz, size_t cz_len,
                           bool *inserted, char *err, size_t errlen)
{
    char seq_s[24], w_s[16], h_s[16], size_s[24];
    snprintf(seq_s, sizeof seq_s, "%" PRId64, seq);
    snprintf(w_s, sizeof w_s, "%d", w);
    snprintf(h_s, sizeof h_s, "%d", h);
    snprintf(size_s, sizeof size_s, "%zu", png_len);
    const char *values[7] = {job_id, seq_s, w_s, h_s, (const char *)png, (const char *)cz, size_s};
    int lengths[7] = {0, 0, 0, 0, (int)png_len, (int)cz_len, 0};
    int formats[7] = {0, 0, 0, 0, 1, 1, 0};
    PGresult *res = PQexecParams(
        pg,
        "INSERT INTO canvas_snapshots (job_id, seq, width, height, png, canvas_z, size_bytes) "
        "VALUES ($1::uuid, $2::bigint, $3::integer, $4::integer, $5::bytea, $6::bytea, "
        "$7::integer) ON CONFLICT (job_id) DO NOTHING",
        7, NULL, values, lengths, formats, 0);
    if (PQresultStatus(res) != PGRES_COMMAND_OK) return pg_failed(pg, res, "insert", err, errlen);
    *inserted = strcmp(PQcmdTuples(res), "1") == 0;
    PQclear(res);
    return 0;
}

/* ---------------------------------------------------------------------------
 * The job */

int snap_run(const cfg_t *cfg, redisContext *redis, PGconn *pg, const char *job_id,
             snap_result_t *res, char *err, size_t errlen)
{
    memset(res, 0, sizeof *res);
    err[0] = '\0';

    /* Cheap check first: a redelivery of a job that already committed
     * costs one indexed SELECT instead of a canvas read and an encode. */
    int rc = snapshot_exists(pg, job_id, &res->existed, err, errlen);
    if (rc || res->existed) return rc;

    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    redisReply *reply = NULL;
    if ((rc = read_canvas(redis, &reply, err, errlen))) return rc;
    const redisReply *canvas = reply->element[0], *seq = reply->element[1];
    int w = cfg->canvas.width, h = cfg->canvas.height;
    size_t want = (size_t)w * (size_t)h;
    uint8_t *png = NULL, *cz = NULL;
    size_t png_len = 0;

    if (canvas->type == REDIS_REPLY_NIL) {
        snprintf(err, errlen, "redis holds no canvas:main");
        rc = PX_ENOCANVAS;
        goto done;
    }
    if (canvas->type != REDIS_REPLY_STRING || canvas->len != want) {
        snprintf(err, errlen, "canvas:main is %zu bytes, configuration says %dx%d = %zu",
                 canvas->type == REDIS_REPLY_STRING ? canvas->len : 0, w, h, want);
        rc = PX_EPROTO;
        goto done;
    }
    if (seq->type == REDIS_REPLY_STRING) {
        char *end = NULL;
        errno = 0;
        long long v = strtoll(seq->str, &end, 10);
        if (errno || end == seq->str || *end || v < 0) {
            snprintf(err, errlen, "canvas:seq is not a number");
            rc = PX_EPROTO;
            goto done;
        }
        res->seq = v;
    } else if (seq->type != REDIS_REPLY_NIL) {
        snprintf(err, errlen, "canvas:seq has an unexpected type");
        rc = PX_EPROTO;
        goto done;
    }
    res->read_ms = elapsed_ms(&t0);

    clock_gettime(CLOCK_MONOTONIC, &t0);
    const uint8_t *px = (const uint8_t *)canvas->str;
    rc = img_png_encode(px, w, h, cfg->canvas.palette, cfg->canvas.palette_len, SNAP_PNG_LEVEL,
                        &png, &png_len);
    if (rc) {
        snprintf(err, errlen, "png encode: %s%s", px_strerror(rc),
                 rc == PX_EPROTO ? " (a canvas byte is outside the palette)" : "");
        goto done;
    }
    uLongf cz_len = compressBound((uLong)want);
    cz = malloc(cz_len);
    if (!cz) {
        snprintf(err, errlen, "no memory for the compressed canvas");
        rc = -ENOMEM;
        goto done;
    }
    int zr = compress2(cz, &cz_len, px, (uLong)want, Z_DEFAULT_COMPRESSION);
    if (zr != Z_OK) {
        snprintf(err, errlen, "compress2 failed: %d", zr);
        rc = zr == Z_MEM_ERROR ? -ENOMEM : PX_EBACKEND;
        goto done;
    }
    res->encode_ms = elapsed_ms(&t0);
    res->png_bytes = png_len;
    res->canvas_z_bytes = cz_len;

    clock_gettime(CLOCK_MONOTONIC, &t0);
    rc = insert_snapshot(pg, job_id, res->seq, w, h, png, png_len, cz, cz_len, &res->inserted, err,
                         errlen);
    res->store_ms = elapsed_ms(&t0);

done:
    free(cz);
    free(png);
    freeReplyObject(reply);
    return rc;
}
