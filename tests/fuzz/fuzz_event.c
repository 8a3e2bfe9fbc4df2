/* F5a: the canvas event decoder (a canvas:events stream entry -> event, as
 * the sink, the rebuild and the worker read them) and the replay onto a
 * canvas. Never trust stored bytes: the input is split at NUL bytes into
 * field/value pairs (a field per value, or the one field e of the packed
 * form); every decoded event is replayed onto a small canvas,
 * which must change only where the events say. */
#include "canvas.h"
#include "fuzz.h"
#include "proto.h"

#define MAXF 32

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *buf = malloc(size + 1);
    const char *f[MAXF];
    size_t len[MAXF];
    size_t n = fuzz_split(data, size, buf, f, len, MAXF);
    /* pairs: field, value, field, value... several events separated by an
     * empty field name */
    canvas_event_t ev[8];
    size_t nev = 0, i = 0;
    while (i + 1 < n && nev < 8) {
        const char *fields[MAXF], *values[MAXF];
        size_t lens[MAXF], k = 0;
        while (i + 1 < n && len[i] > 0) {
            fields[k] = f[i];
            values[k] = f[i + 1];
            lens[k] = len[i + 1];
            k++;
            i += 2;
        }
        i++; /* the separator */
        canvas_event_t e;
        if (proto_event_from_fields(fields, values, lens, k, &e) == 0) {
            FUZZ_CHECK(strlen(e.id) == 32 && proto_hex_valid(e.id, 32));
            FUZZ_CHECK(proto_uuid_valid(e.user_id));
            FUZZ_CHECK(e.seq > 0 && e.time_ms > 0);
            FUZZ_CHECK(e.x >= 0 && e.x < 65536 && e.y >= 0 && e.y < 65536);
            FUZZ_CHECK(e.color >= 0 && e.color < 256);
            ev[nev++] = e;
        }
    }
    const canvas_geom_t g = {64, 48, 16};
    uint8_t canvas[64 * 48], before[64 * 48];
    memset(canvas, 0, sizeof canvas);
    memcpy(before, canvas, sizeof canvas);
    int64_t last = canvas_replay(canvas, &g, ev, nev, 0);
    for (size_t p = 0; p < sizeof canvas; p++) {
        if (canvas[p] == before[p]) continue;
        bool by_event = false; /* a changed pixel is some valid event's */
        for (size_t k = 0; k < nev; k++) {
            size_t at = (size_t)ev[k].y * (size_t)g.width + (size_t)ev[k].x;
            if (ev[k].x < g.width && ev[k].y < g.height && at == p && ev[k].color == canvas[p])
                by_event = true;
        }
        FUZZ_CHECK(by_event);
    }
    FUZZ_CHECK(last >= 0);
    free(buf);
    return 0;
}
