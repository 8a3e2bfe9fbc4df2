#include "tl.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "apng.h"
#include "db_jobs.h"
#include "img_png.h"

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The replay: the canvas as of the last event applied, and the frames
 * written so far. Frame `next` is due before the first event placed after
 * its time. */
typedef struct tl_state {
    const cfg_t *cfg;
    const timelapse_params_t *p;
    uint8_t *canvas; /* canvas width * height (the caller's) */
    uint8_t *frame;  /* one rendered frame (region, scale), fw * fh */
    int fw, fh, depth;
    bool direct; /* scale 1: frames are deflated straight from the canvas */
    apng_t *apng;
    int next;
    int64_t next_time;
    int64_t events;
    const db_reset_t *resets; /* not applied yet: resets[0..nresets) */
    size_t nresets;
    tl_progress_fn progress;
    void *arg;
    int64_t tick_ms;
    char *err;
    size_t errlen;
} tl_state_t;

static int tick(tl_state_t *s, bool force)
{
    int64_t now = mono_ms();
    if (!force && now - s->tick_ms < TL_TICK_MS) return 0;
    s->tick_ms = now;
    if (!s->progress) return 0;
    int rc = s->progress(s->arg, (double)s->next / s->p->frames);
    if (rc) snprintf(s->err, s->errlen, "stopped at frame %d of %d", s->next, s->p->frames);
    return rc;
}

/* Writes frame s->next from the current canvas. */
static int emit(tl_state_t *s)
{
    const timelapse_params_t *p = s->p;
    int cw = s->cfg->canvas.width;
    int rc;
    if (s->next == 0) {
        uint8_t *png = NULL;
        size_t len = 0;
        timelapse_frame_render(s->canvas, cw, p, s->frame);
        rc = img_png_encode(s->frame, s->fw, s->fh, s->cfg->canvas.palette,
                            s->cfg->canvas.palette_len, TL_PNG_LEVEL, &png, &len);
        if (rc == 0) rc = apng_begin(png, len, p->frames, p->fps, &s->apng);
        free(png);
    } else {
        uint8_t *z = NULL;
        size_t zlen = 0;
        const uint8_t *src = s->frame;
        size_t stride = (size_t)s->fw;
        if (s->direct) {
            src = s->canvas + (size_t)p->y * (size_t)cw + (size_t)p->x;
            stride = (size_t)cw;
        } else {
            timelapse_frame_render(s->canvas, cw, p, s->frame);
        }
        rc = img_png_deflate_frame(src, stride, s->fw, s->fh, s->depth, TL_PNG_LEVEL, &z, &zlen);
        if (rc == 0) rc = apng_add_frame(s->apng, z, zlen);
        free(z);
    }
    if (rc) {
        snprintf(s->err, s->errlen, "frame %d: %s", s->next, px_strerror(rc));
        return rc;
    }
    s->next++;
    if (s->next < p->frames) s->next_time = timelapse_frame_time(p, s->next);
    return tick(s, false);
}

/* Emits the frames due before time_ms (each shows the canvas as it was
 * before anything placed after its time). */
static int emit_before(tl_state_t *s, int64_t time_ms)
{
    while (s->next < s->p->frames && time_ms > s->next_time) {
        int rc = emit(s);
        if (rc) return rc;
    }
    return 0;
}

/* Applies the next reset: the canvas goes blank at its time, or at `before`
 * if that is earlier (the reset's time is the admin_actions row's, taken by
 * PostgreSQL a moment after Redis blanked the canvas; seq order wins). */
static int apply_reset(tl_state_t *s, int64_t before)
{
    int64_t t = s->resets->time_ms < before ? s->resets->time_ms : before;
    int rc = emit_before(s, t);
    if (rc) return rc;
    memset(s->canvas, 0, (size_t)s->cfg->canvas.width * (size_t)s->cfg->canvas.height);
    s->resets++;
    s->nresets--;
    return 0;
}

static int on_event(void *arg, const canvas_event_t *ev)
{
    tl_state_t *s = arg;
    int rc;
    while (s->nresets && s->resets->seq < ev->seq)
        if ((rc = apply_reset(s, ev->time_ms))) return rc;
    if ((rc = emit_before(s, ev->time_ms))) return rc;
    const cfg_t *cfg = s->cfg;
    if (ev->x >= 0 && ev->y >= 0 && ev->x < cfg->canvas.width && ev->y < cfg->canvas.height)
        s->canvas[(size_t)ev->y * (size_t)cfg->canvas.width + (size_t)ev->x] = (uint8_t)ev->color;
    /* a long replay before the first frame still reports in */
    if ((++s->events & 0xffff) == 0) return tick(s, false);
    return 0;
}

int tl_render(const cfg_t *cfg, const timelapse_params_t *p, uint8_t *canvas, tl_scan_fn scan,
              void *src, const db_reset_t *resets, size_t nresets, tl_progress_fn progress,
              void *arg, uint8_t **apng, size_t *len, int64_t *events, char *err, size_t errlen)
{
    *apng = NULL;
    *len = 0;
    *events = 0;
    err[0] = '\0';
    tl_state_t s = {.cfg = cfg,
                    .p = p,
                    .canvas = canvas,
                    .fw = timelapse_frame_width(p),
                    .fh = timelapse_frame_height(p),
                    .depth = img_png_bit_depth(cfg->canvas.palette_len),
                    .direct = p->scale == 1,
                    .next_time = p->from_ms,
                    .resets = resets,
                    .nresets = resets ? nresets : 0,
                    .progress = progress,
                    .arg = arg,
                    .tick_ms = mono_ms(),
                    .err = err,
                    .errlen = errlen};
    int rc = 0;
    s.frame = malloc((size_t)s.fw * (size_t)s.fh);
    if (!s.frame) {
        snprintf(err, errlen, "no memory for a %dx%d frame", s.fw, s.fh);
        rc = -ENOMEM;
        goto done;
    }

    rc = scan(src, on_event, &s);
    while (rc == 0 && s.nresets) /* resets after the last event */
        rc = apply_reset(&s, INT64_MAX);
    while (rc == 0 && s.next < p->frames)
        rc = emit(&s); /* frames after the last event */
    if (rc == 0) rc = tick(&s, true);
    if (rc) goto done;
    *events = s.events;

    rc = apng_finish(s.apng, apng, len);
    if (rc) snprintf(err, errlen, "apng: %s", px_strerror(rc));

done:
    apng_free(s.apng);
    free(s.frame);
    return rc;
}

/* tl_render's event source for a job: pixel_events after the start
 * snapshot, up to `to`. */
typedef struct db_scan {
    db_t *db;
    int64_t after_seq, until_ms;
} db_scan_t;

static int scan_db(void *src, db_event_fn fn, void *arg)
{
    db_scan_t *d = src;
    return db_events_scan_range(d->db, d->after_seq, d->until_ms, fn, arg);
}

int tl_run(const cfg_t *cfg, db_t *db, const char *job_id, const timelapse_params_t *p,
           tl_progress_fn progress, void *arg, tl_result_t *res, char *err, size_t errlen)
{
    memset(res, 0, sizeof *res);
    err[0] = '\0';
    int w = cfg->canvas.width, h = cfg->canvas.height;
    res->width = timelapse_frame_width(p);
    res->height = timelapse_frame_height(p);
    int64_t t0 = mono_ms();
    uint8_t *canvas = NULL, *apng = NULL;
    size_t len = 0;

    /* Start from the newest snapshot that shows no event after `from`. */
    int64_t seq_from = 0, min_seq = 0;
    int rc = db_events_seq_at(db, p->from_ms, &seq_from);
    if (rc == 0) rc = db_events_min_seq(db, &min_seq);
    if (rc == 0) {
        rc = db_snapshot_at_or_before(db, w, h, seq_from, &canvas, &res->base_seq);
        if (rc == PX_ENOTFOUND) {
            res->base_seq = 0;
            canvas = calloc(1, (size_t)w * (size_t)h);
            rc = canvas ? 0 : -ENOMEM;
        }
    }
    if (rc) {
        snprintf(err, errlen, "%s", rc == PX_EBACKEND ? db_errstr(db) : px_strerror(rc));
        goto done;
    }
    /* Retention drops the oldest events first: if the oldest one left is
     * not right after the start, the ones in between are gone. */
    if (min_seq > res->base_seq + 1) {
        snprintf(err, errlen,
                 "history before event %lld has been removed by retention and no snapshot "
                 "covers \"from\"",
                 (long long)min_seq);
        rc = PX_ENOTFOUND;
        goto done;
    }

    /* resets after the start blank the canvas where they happened */
    db_reset_t *resets = NULL;
    size_t nresets = 0;
    rc = db_resets_range(db, res->base_seq, p->to_ms, &resets, &nresets);
    if (rc) {
        snprintf(err, errlen, "%s", db_errstr(db));
        goto done;
    }
    db_scan_t scan = {.db = db, .after_seq = res->base_seq, .until_ms = p->to_ms};
    rc = tl_render(cfg, p, canvas, scan_db, &scan, resets, nresets, progress, arg, &apng, &len,
                   &res->events, err, errlen);
    free(resets);
    if (rc == PX_EBACKEND && !err[0]) snprintf(err, errlen, "%s", db_errstr(db));
    if (rc) goto done;
    res->apng_bytes = len;
    res->render_ms = (int)(mono_ms() - t0);

    t0 = mono_ms();
    db_timelapse_row_t row = {.job_id = job_id,
                              .apng = apng,
                              .len = len,
                              .frames = p->frames,
                              .fps = p->fps,
                              .width = res->width,
                              .height = res->height};
    rc = db_timelapse_store(db, &row);
    if (rc) snprintf(err, errlen, "%s", rc == PX_EBACKEND ? db_errstr(db) : px_strerror(rc));
    res->store_ms = (int)(mono_ms() - t0);

done:
    free(apng);
    free(canvas);
    return rc;
}
