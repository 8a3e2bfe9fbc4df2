#include "canvas.h"

#include <stdlib.h>

int canvas_validate(const canvas_geom_t *g, int64_t x, int64_t y, int64_t color)
{
    if (x < 0 || y < 0 || x >= g->width || y >= g->height) return PX_EBOUNDS;
    if (color < 0 || color >= g->palette_len) return PX_ECOLOR;
    return 0;
}

static int by_seq(const void *a, const void *b)
{
    int64_t sa = ((const canvas_event_t *)a)->seq, sb = ((const canvas_event_t *)b)->seq;
    return (sa > sb) - (sa < sb);
}

int64_t canvas_replay(uint8_t *canvas, const canvas_geom_t *g, canvas_event_t *ev, size_t n,
                      int64_t after_seq)
{
    if (n) qsort(ev, n, sizeof *ev, by_seq);
    int64_t last = after_seq;
    for (size_t i = 0; i < n; i++) {
        if (ev[i].seq <= after_seq) continue;
        if (ev[i].x < 0 || ev[i].y < 0 || ev[i].x >= g->width || ev[i].y >= g->height) continue;
        canvas[canvas_index_of(g, ev[i].x, ev[i].y)] = (uint8_t)ev[i].color;
        if (ev[i].seq > last) last = ev[i].seq;
    }
    return last;
}

size_t canvas_diff(const uint8_t *a, const uint8_t *b, size_t n, size_t *offsets,
                   size_t max_report)
{
    size_t d = 0;
    for (size_t i = 0; i < n; i++) {
        if (a[i] != b[i]) {
            if (offsets && d < max_report) offsets[d] = i;
            d++;
        }
    }
    return d;
}
