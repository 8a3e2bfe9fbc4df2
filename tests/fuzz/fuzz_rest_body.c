/* F2: a REST body parser, POST /api/v1/timelapse (timelapse_parse_request),
 * and the job parameters the worker reads back (timelapse_params_decode),
 * fed arbitrary bytes. An accepted request must satisfy every limit, and
 * must survive encode -> decode unchanged (what the worker runs is what the
 * api accepted). The RFC 3339 parser gets the bytes as one string too. */
#include "fuzz.h"
#include "proto.h"
#include "timelapse.h"

static const timelapse_limits_t lim = {.canvas_width = 500,
                                        .canvas_height = 400,
                                        .max_frames = 240,
                                        .max_pixels = 500LL * 400 * 240,
                                        .now_ms = 1800000000000LL};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char msg[200];
    timelapse_params_t p, q;
    int rc = timelapse_parse_request((const char *)data, size, &lim, &p, msg, sizeof msg);
    if (rc == 0) {
        FUZZ_CHECK(p.from_ms < p.to_ms && p.to_ms <= lim.now_ms + TIMELAPSE_FUTURE_SLACK_MS);
        FUZZ_CHECK(p.frames >= TIMELAPSE_MIN_FRAMES && p.frames <= lim.max_frames);
        FUZZ_CHECK(p.fps >= 1 && p.fps <= TIMELAPSE_MAX_FPS);
        FUZZ_CHECK(p.scale >= 1 && p.scale <= TIMELAPSE_MAX_SCALE);
        FUZZ_CHECK(p.x >= 0 && p.y >= 0 && p.width > 0 && p.height > 0);
        FUZZ_CHECK(p.x + p.width <= lim.canvas_width && p.y + p.height <= lim.canvas_height);
        FUZZ_CHECK(timelapse_output_pixels(&p) <= lim.max_pixels);
        char *enc = timelapse_params_encode(&p);
        FUZZ_CHECK(timelapse_params_decode(enc, strlen(enc), &lim, &q, msg, sizeof msg) == 0);
        FUZZ_CHECK(!memcmp(&p, &q, sizeof p));
        free(enc);
        for (int i = 0; i < p.frames; i++) {
            int64_t t = timelapse_frame_time(&p, i);
            FUZZ_CHECK(t >= p.from_ms && t <= p.to_ms);
        }
    } else {
        FUZZ_CHECK(memchr(msg, '\0', sizeof msg) && msg[0]);
    }
    if (timelapse_params_decode((const char *)data, size, &lim, &q, msg, sizeof msg) == 0)
        FUZZ_CHECK(q.from_ms < q.to_ms && timelapse_output_pixels(&q) <= lim.max_pixels);

    char *s = malloc(size + 1);
    memcpy(s, data, size);
    s[size] = '\0';
    int64_t ms;
    if (timelapse_time_parse(s, &ms)) {
        char back[32];
        proto_time_format(ms, back); /* a parsed time formats back to a valid one */
        int64_t ms2;
        FUZZ_CHECK(timelapse_time_parse(back, &ms2) && ms2 == ms);
    }
    free(s);
    return 0;
}
