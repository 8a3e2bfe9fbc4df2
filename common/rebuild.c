#include "rebuild.h"

#include <stdlib.h>
#include <string.h>

#include "db_jobs.h"
#include "proto.h"
#include "xalloc.h"

typedef struct {
    canvas_event_t *ev;
    size_t n, cap;
} evlist_t;

/* Reads every entry of canvas:events (bounded by what the stream holds). */
static int read_stream(rds_t *rds, evlist_t *out)
{
    char start[48] = "-";
    for (;;) {
        redisReply *r = rds_command(rds, "XRANGE %s %s + COUNT 10000", RDS_KEY_EVENTS, start);
        if (!r) return PX_EBACKEND;
        if (r->type != REDIS_REPLY_ARRAY) {
            freeReplyObject(r);
            return PX_EBACKEND;
        }
        for (size_t i = 0; i < r->elements; i++) {
            redisReply *e = r->element[i];
            if (e->type != REDIS_REPLY_ARRAY || e->elements != 2) continue;
            snprintf(start, sizeof start, "(%s", e->element[0]->str);
            redisReply *f = e->element[1];
            const char *names[16], *vals[16];
            size_t lens[16];
            size_t np = 0;
            for (size_t j = 0; j + 1 < f->elements && np < 16; j += 2, np++) {
                names[np] = f->element[j]->str;
                vals[np] = f->element[j + 1]->str;
                lens[np] = f->element[j + 1]->len;
            }
            canvas_event_t ev;
            if (proto_event_from_fields(names, vals, lens, np, &ev)) continue; /* poison */
            if (out->n == out->cap) {
                out->cap = out->cap ? out->cap * 2 : 1024;
                out->ev = xreallocarray(out->ev, out->cap, sizeof *out->ev);
            }
            out->ev[out->n++] = ev;
        }
        size_t got = r->elements;
        freeReplyObject(r);
        if (got < 10000) return 0;
    }
}

static int by_seq(const void *a, const void *b)
{
    int64_t sa = ((const canvas_event_t *)a)->seq, sb = ((const canvas_event_t *)b)->seq;
    return (sa > sb) - (sa < sb);
}

typedef struct {
    uint8_t *canvas;
    const canvas_geom_t *g;
    evlist_t *stream;
    size_t si; /* next stream event to merge */
    int64_t max_seq; /* events above it are not applied */
    rebuild_stats_t *st;
    const db_reset_t *resets; /* canvas resets after the snapshot, not applied yet */
    size_t nresets;
} merge_t;

#define STOP_SCAN 1 /* on_db_event: past max_seq, the scan is complete */

/* Blanks the canvas for each reset with a seq below `before`: a reset after
 * the snapshot normally comes with a blank snapshot of its own, but not when
 * storing that one failed. */
static void apply_resets(merge_t *m, int64_t before)
{
    for (; m->nresets && m->resets->seq < before; m->resets++, m->nresets--) {
        memset(m->canvas, 0, canvas_size(m->g));
        if (m->resets->seq > m->st->seq) m->st->seq = m->resets->seq;
    }
}

static void apply(merge_t *m, const canvas_event_t *ev)
{
    apply_resets(m, ev->seq);
    if (ev->x >= 0 && ev->y >= 0 && ev->x < m->g->width && ev->y < m->g->height)
        m->canvas[canvas_index_of(m->g, ev->x, ev->y)] = (uint8_t)ev->color;
    if (ev->seq > m->st->seq) m->st->seq = ev->seq;
}

/* Stream events before this one go first; one with the same seq is the same
 * event and is skipped. */
static int on_db_event(void *arg, const canvas_event_t *ev)
{
    merge_t *m = arg;
    if (ev->seq > m->max_seq) return STOP_SCAN;
    while (m->si < m->stream->n && m->stream->ev[m->si].seq <= ev->seq) {
        if (m->stream->ev[m->si].seq < ev->seq) {
            apply(m, &m->stream->ev[m->si]);
            m->st->stream_events++;
        }
        m->si++;
    }
    apply(m, ev);
    m->st->db_events++;
    return 0;
}

int rebuild_canvas(db_t *db, rds_t *rds, const canvas_geom_t *g, uint8_t **canvas,
                   rebuild_stats_t *st)
{
    return rebuild_canvas_at(db, rds, g, INT64_MAX, canvas, st);
}

int rebuild_canvas_at(db_t *db, rds_t *rds, const canvas_geom_t *g, int64_t max_seq,
                      uint8_t **canvas, rebuild_stats_t *st)
{
    memset(st, 0, sizeof *st);
    *canvas = NULL;
    evlist_t stream = {0};
    if (rds) {
        int rc = read_stream(rds, &stream);
        if (rc) {
            free(stream.ev);
            return rc;
        }
        if (stream.n) qsort(stream.ev, stream.n, sizeof *stream.ev, by_seq);
    }
    uint8_t *c = NULL;
    int64_t snap_seq = 0;
    int rc = db_snapshot_at_or_before(db, g->width, g->height, max_seq, &c, &snap_seq);
    if (rc == PX_ENOTFOUND) {
        c = xcalloc(1, canvas_size(g));
        snap_seq = 0;
    } else if (rc) {
        free(stream.ev);
        return rc;
    }
    st->snapshot_seq = snap_seq;
    st->seq = snap_seq;
    db_reset_t *resets = NULL;
    size_t nresets = 0;
    rc = db_resets_range(db, snap_seq, INT64_MAX, &resets, &nresets);
    if (rc) {
        free(c);
        free(stream.ev);
        return rc;
    }
    merge_t m = {c, g, &stream, 0, max_seq, st, resets, nresets};
    while (m.si < stream.n && stream.ev[m.si].seq <= snap_seq) m.si++;
    rc = db_events_scan(db, snap_seq, on_db_event, &m);
    if (rc == STOP_SCAN) rc = 0;
    if (rc) {
        free(resets);
        free(c);
        free(stream.ev);
        return rc;
    }
    for (; m.si < stream.n && stream.ev[m.si].seq <= max_seq; m.si++) {
        if (m.si > 0 && stream.ev[m.si].seq == stream.ev[m.si - 1].seq) continue;
        apply(&m, &stream.ev[m.si]);
        st->stream_events++;
    }
    apply_resets(&m, max_seq == INT64_MAX ? INT64_MAX : max_seq + 1);
    free(resets);
    free(stream.ev);
    *canvas = c;
    return 0;
}
