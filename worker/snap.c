#include "snap.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zlib.h>

#include "db_jobs.h"
#include "img_png.h"

static int elapsed_ms(const struct timespec *since)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (int)((now.tv_sec - since->tv_sec) * 1000 + (now.tv_nsec - since->tv_nsec) / 1000000);
}

int snap_read_canvas(const cfg_t *cfg, rds_t *rds, uint8_t **px, int64_t *seq, char *err,
                     size_t errlen)
{
    size_t len = 0;
    int rc = rds_canvas_get(rds, px, &len, seq);
    if (rc == PX_ENOCANVAS) {
        snprintf(err, errlen, "redis holds no %s", RDS_KEY_CANVAS);
        return rc;
    }
    if (rc) {
        snprintf(err, errlen, "%s", rds_errstr(rds));
        return PX_EBACKEND;
    }
    int w = cfg->canvas.width, h = cfg->canvas.height;
    size_t want = (size_t)w * (size_t)h;
    if (len != want) {
        snprintf(err, errlen, "%s is %zu bytes, configuration says %dx%d = %zu", RDS_KEY_CANVAS,
                 len, w, h, want);
        free(*px);
        *px = NULL;
        return PX_EPROTO;
    }
    return 0;
}

/* ---------------------------------------------------------------------------
 * Encoding: the PNG and canvas_z at the same time */

/* canvas_z of one canvas; runs on the helper thread (or inline). */
typedef struct cz_job {
    const uint8_t *px; /* borrowed */
    size_t n;
    uint8_t *out; /* gives: free() */
    uLongf len;
    int zr; /* zlib's result */
} cz_job_t;

static void compress_canvas(cz_job_t *j)
{
    j->len = compressBound((uLong)j->n);
    j->out = malloc(j->len);
    j->zr =
        j->out ? compress2(j->out, &j->len, j->px, (uLong)j->n, SNAP_CANVAS_Z_LEVEL) : Z_MEM_ERROR;
}

static void *cz_thread(void *arg)
{
    compress_canvas(arg);
    return NULL;
}

int snap_encode(const cfg_t *cfg, const uint8_t *px, uint8_t **png, size_t *png_len, uint8_t **cz,
                size_t *cz_len, char *err, size_t errlen)
{
    *png = *cz = NULL;
    *png_len = *cz_len = 0;
    int w = cfg->canvas.width, h = cfg->canvas.height;
    cz_job_t job = {.px = px, .n = (size_t)w * (size_t)h};

    /* Both are single-threaded zlib over the same read-only bytes: one after
     * the other they take the sum (2000x2000: PNG 26 ms + canvas_z 20 ms),
     * side by side the longer of the two. Without a thread, inline. */
    pthread_t tid;
    bool threaded = pthread_create(&tid, NULL, cz_thread, &job) == 0;
    int rc = img_png_encode(px, w, h, cfg->canvas.palette, cfg->canvas.palette_len, SNAP_PNG_LEVEL,
                            png, png_len);
    if (threaded)
        pthread_join(tid, NULL);
    else if (rc == 0)
        compress_canvas(&job);

    if (rc) {
        snprintf(err, errlen, "png encode: %s%s", px_strerror(rc),
                 rc == PX_EPROTO ? " (a canvas byte is outside the palette)" : "");
    } else if (job.zr != Z_OK) {
        if (job.zr == Z_MEM_ERROR)
            snprintf(err, errlen, "no memory for the compressed canvas");
        else
            snprintf(err, errlen, "compress2 failed: %d", job.zr);
        rc = job.zr == Z_MEM_ERROR ? -ENOMEM : PX_EBACKEND;
    }
    if (rc) {
        free(*png);
        *png = NULL;
        *png_len = 0;
        free(job.out);
        return rc;
    }
    *cz = job.out;
    *cz_len = job.len;
    return 0;
}

/* ---------------------------------------------------------------------------
 * The job */

int snap_run(const cfg_t *cfg, rds_t *rds, db_t *db, const char *job_id, snap_result_t *res,
             char *err, size_t errlen)
{
    memset(res, 0, sizeof *res);
    err[0] = '\0';

    /* A redelivery of a job that already committed costs one indexed SELECT
     * instead of a canvas read and an encode. */
    int rc = db_snapshot_by_job(db, job_id, &res->id);
    if (rc == 0) {
        res->existed = true;
        if (db_snapshot_job_done(db, job_id, res->id) == 0) return 0;
        rc = PX_EBACKEND;
    }
    if (rc != PX_ENOTFOUND) {
        snprintf(err, errlen, "%s", db_errstr(db));
        return PX_EBACKEND;
    }

    /* canvas and seq in one MULTI, so the seq is exactly the one of the bytes
     * (a placement is one script: it cannot land between the two GETs) */
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    uint8_t *px = NULL, *png = NULL, *cz = NULL;
    size_t png_len = 0, cz_len = 0;
    rc = snap_read_canvas(cfg, rds, &px, &res->seq, err, errlen);
    if (rc) return rc;
    res->read_ms = elapsed_ms(&t0);

    clock_gettime(CLOCK_MONOTONIC, &t0);
    rc = snap_encode(cfg, px, &png, &png_len, &cz, &cz_len, err, errlen);
    if (rc) goto done;
    res->encode_ms = elapsed_ms(&t0);
    res->png_bytes = png_len;
    res->canvas_z_bytes = cz_len;

    clock_gettime(CLOCK_MONOTONIC, &t0);
    db_snapshot_row_t row = {.job_id = job_id,
                             .seq = res->seq,
                             .width = cfg->canvas.width,
                             .height = cfg->canvas.height,
                             .png = png,
                             .png_len = png_len,
                             .canvas_z = cz,
                             .canvas_z_len = cz_len};
    rc = db_snapshot_store(db, &row, &res->id, &res->inserted);
    if (rc) snprintf(err, errlen, "%s", db_errstr(db));
    res->store_ms = elapsed_ms(&t0);

done:
    free(cz);
    free(png);
    free(px);
    return rc;
}
