#include "timelapse.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto.h"
#include "xalloc.h"

/* ---------------------------------------------------------------------------
 * RFC 3339 */

static bool digits(const char *s, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') return false;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return true;
}

static bool leap(int y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

/* Days from 1970-01-01 to y-m-d (proleptic Gregorian; Howard Hinnant's
 * days_from_civil), so no timegm and no TZ environment is involved. */
static int64_t days_from_civil(int y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

bool timelapse_time_parse(const char *s, int64_t *ms)
{
    static const int mdays[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int y, mo, d, h, mi, se;
    size_t n = strlen(s);
    if (n < 20 || !digits(s, 4, &y) || s[4] != '-' || !digits(s + 5, 2, &mo) || s[7] != '-' ||
        !digits(s + 8, 2, &d) || (s[10] != 'T' && s[10] != 't' && s[10] != ' ') ||
        !digits(s + 11, 2, &h) || s[13] != ':' || !digits(s + 14, 2, &mi) || s[16] != ':' ||
        !digits(s + 17, 2, &se))
        return false;
    if (y < 1970 || mo < 1 || mo > 12 || d < 1 || h > 23 || mi > 59 || se > 60) return false;
    if (d > mdays[mo - 1] + (mo == 2 && leap(y))) return false;
    if (se == 60) se = 59; /* a leap second is shown as the second before it */
    const char *p = s + 19;
    int frac_ms = 0;
    if (*p == '.') {
        p++;
        int nd = 0;
        while (*p >= '0' && *p <= '9') {
            if (nd < 3) frac_ms = frac_ms * 10 + (*p - '0');
            nd++;
            p++;
        }
        if (nd == 0) return false;
        for (; nd < 3; nd++)
            frac_ms *= 10;
    }
    int off_min = 0;
    if ((*p == 'Z' || *p == 'z') && p[1] == '\0') {
        off_min = 0;
    } else if ((*p == '+' || *p == '-') && strlen(p) == 6 && p[3] == ':') {
        int oh, om;
        if (!digits(p + 1, 2, &oh) || !digits(p + 4, 2, &om) || oh > 23 || om > 59) return false;
        off_min = (oh * 60 + om) * (*p == '-' ? -1 : 1);
    } else {
        return false;
    }
    int64_t secs = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + se - off_min * 60;
    if (secs < 0) return false;
    *ms = secs * 1000 + frac_ms;
    return true;
}

/* ---------------------------------------------------------------------------
 * Validation */

static int fail(char *msg, size_t msglen, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int fail(char *msg, size_t msglen, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, msglen, fmt, ap);
    va_end(ap);
    return code;
}

timelapse_limits_t timelapse_limits(const cfg_t *cfg, int64_t now_ms)
{
    return (timelapse_limits_t){.canvas_width = cfg->canvas.width,
                                .canvas_height = cfg->canvas.height,
                                .max_frames = cfg->worker.max_timelapse_frames,
                                .max_pixels = cfg->worker.max_timelapse_pixels,
                                .now_ms = now_ms};
}

int64_t timelapse_output_pixels(const timelapse_params_t *p)
{
    return (int64_t)p->frames * p->width * p->height * p->scale * p->scale;
}

/* The checks shared by a request and stored params. */
static int check(const timelapse_params_t *p, const timelapse_limits_t *lim, char *msg,
                 size_t msglen)
{
    if (p->from_ms >= p->to_ms)
        return fail(msg, msglen, PX_EPROTO, "\"from\" must be before \"to\"");
    if (p->frames < TIMELAPSE_MIN_FRAMES || p->frames > lim->max_frames)
        return fail(msg, msglen, PX_EPROTO, "\"frames\" must be an integer in %d..%d",
                    TIMELAPSE_MIN_FRAMES, lim->max_frames);
    if (p->fps < 1 || p->fps > TIMELAPSE_MAX_FPS)
        return fail(msg, msglen, PX_EPROTO, "\"fps\" must be an integer in 1..%d",
                    TIMELAPSE_MAX_FPS);
    if (p->scale < 1 || p->scale > TIMELAPSE_MAX_SCALE)
        return fail(msg, msglen, PX_EPROTO, "\"scale\" must be an integer in 1..%d",
                    TIMELAPSE_MAX_SCALE);
    if (p->width < 1 || p->height < 1 || p->x < 0 || p->y < 0 ||
        p->x > lim->canvas_width - p->width || p->y > lim->canvas_height - p->height)
        return fail(msg, msglen, PX_EBOUNDS,
                    "\"region\" must be a non-empty rectangle inside the %dx%d canvas",
                    lim->canvas_width, lim->canvas_height);
    if ((int64_t)p->width * p->scale > TIMELAPSE_MAX_SIDE ||
        (int64_t)p->height * p->scale > TIMELAPSE_MAX_SIDE)
        return fail(msg, msglen, PX_ETOOBIG,
                    "output too large: a frame may be at most %d pixels a side (region * scale)",
                    TIMELAPSE_MAX_SIDE);
    int64_t px = timelapse_output_pixels(p);
    if (px > lim->max_pixels)
        return fail(msg, msglen, PX_ETOOBIG,
                    "output too large: frames * width * height * scale^2 = %lld, at most %lld",
                    (long long)px, (long long)lim->max_pixels);
    return 0;
}

/* Integer member `key` of obj in lo..hi (wide enough for any canvas). */
static bool get_int(json_t *obj, const char *key, int64_t lo, int64_t hi, int *out)
{
    json_t *v = json_object_get(obj, key);
    if (!json_is_integer(v)) return false;
    json_int_t n = json_integer_value(v);
    if (n < lo || n > hi) return false;
    *out = (int)n;
    return true;
}

static bool only_keys(json_t *obj, const char *const *keys, size_t nkeys, const char **bad)
{
    const char *key;
    json_t *val;
    json_object_foreach(obj, key, val)
    {
        (void)val;
        bool known = false;
        for (size_t i = 0; i < nkeys && !known; i++)
            known = strcmp(key, keys[i]) == 0;
        if (!known) {
            *bad = key;
            return false;
        }
    }
    return true;
}

/* Region and scale (both optional), into p. */
static int read_region(json_t *root, const timelapse_limits_t *lim, timelapse_params_t *p,
                       char *msg, size_t msglen)
{
    p->x = p->y = 0;
    p->width = lim->canvas_width;
    p->height = lim->canvas_height;
    p->scale = 1;
    json_t *region = json_object_get(root, "region");
    if (region) {
        static const char *const rkeys[] = {"x", "y", "width", "height"};
        const char *bad = NULL;
        if (!json_is_object(region) || !only_keys(region, rkeys, 4, &bad) ||
            json_object_size(region) != 4)
            return fail(msg, msglen, PX_EPROTO,
                        "\"region\" must be an object with exactly x, y, width, height");
        /* wide bounds here so that the message for a region outside the
         * canvas is the bounds message, not a type error */
        if (!get_int(region, "x", -1000000, 1000000, &p->x) ||
            !get_int(region, "y", -1000000, 1000000, &p->y) ||
            !get_int(region, "width", -1000000, 1000000, &p->width) ||
            !get_int(region, "height", -1000000, 1000000, &p->height))
            return fail(msg, msglen, PX_EBOUNDS,
                        "\"region\" members must be integers inside the %dx%d canvas",
                        lim->canvas_width, lim->canvas_height);
    }
    json_t *scale = json_object_get(root, "scale");
    if (scale && !get_int(root, "scale", 1, TIMELAPSE_MAX_SCALE, &p->scale))
        return fail(msg, msglen, PX_EPROTO, "\"scale\" must be an integer in 1..%d",
                    TIMELAPSE_MAX_SCALE);
    return 0;
}

static json_t *load(const char *body, size_t len, char *msg, size_t msglen)
{
    json_error_t jerr;
    json_t *root = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        fail(msg, msglen, PX_EPROTO, "invalid JSON: %s", jerr.text);
        return NULL;
    }
    if (!json_is_object(root)) {
        json_decref(root);
        fail(msg, msglen, PX_EPROTO, "the body must be a JSON object");
        return NULL;
    }
    return root;
}

int timelapse_parse_request(const char *body, size_t len, const timelapse_limits_t *lim,
                            timelapse_params_t *out, char *msg, size_t msglen)
{
    memset(out, 0, sizeof *out);
    json_t *root = load(body, len, msg, msglen);
    if (!root) return PX_EPROTO;
    static const char *const keys[] = {"from", "to", "frames", "fps", "region", "scale"};
    const char *bad = NULL;
    int rc = 0;
    const char *from = json_string_value(json_object_get(root, "from"));
    const char *to = json_string_value(json_object_get(root, "to"));
    if (!only_keys(root, keys, sizeof keys / sizeof keys[0], &bad)) {
        rc = fail(msg, msglen, PX_EPROTO, "unknown member \"%.32s\"", bad);
    } else if (!from || !to) {
        rc = fail(msg, msglen, PX_EPROTO, "\"from\" and \"to\" are required RFC 3339 strings");
    } else if (!timelapse_time_parse(from, &out->from_ms)) {
        rc = fail(msg, msglen, PX_EPROTO, "\"from\" is not an RFC 3339 date-time");
    } else if (!timelapse_time_parse(to, &out->to_ms)) {
        rc = fail(msg, msglen, PX_EPROTO, "\"to\" is not an RFC 3339 date-time");
    } else if (!json_object_get(root, "frames") || !json_object_get(root, "fps")) {
        rc = fail(msg, msglen, PX_EPROTO, "\"frames\" and \"fps\" are required integers");
    } else if (!get_int(root, "frames", 0, 1000000000, &out->frames)) {
        rc = fail(msg, msglen, PX_EPROTO, "\"frames\" must be an integer in %d..%d",
                  TIMELAPSE_MIN_FRAMES, lim->max_frames);
    } else if (!get_int(root, "fps", 0, 1000000000, &out->fps)) {
        rc = fail(msg, msglen, PX_EPROTO, "\"fps\" must be an integer in 1..%d", TIMELAPSE_MAX_FPS);
    } else if ((rc = read_region(root, lim, out, msg, msglen)) == 0) {
        rc = check(out, lim, msg, msglen);
        if (rc == 0 && lim->now_ms && out->to_ms > lim->now_ms + TIMELAPSE_FUTURE_SLACK_MS)
            rc = fail(msg, msglen, PX_EPROTO, "\"to\" lies in the future");
    }
    json_decref(root);
    return rc;
}

char *timelapse_params_encode(const timelapse_params_t *p)
{
    char from[32], to[32];
    proto_time_format(p->from_ms, from);
    proto_time_format(p->to_ms, to);
    json_t *j = json_pack("{s:s,s:s,s:I,s:I,s:i,s:i,s:{s:i,s:i,s:i,s:i},s:i}", "from", from, "to",
                          to, "fromMs", (json_int_t)p->from_ms, "toMs", (json_int_t)p->to_ms,
                          "frames", p->frames, "fps", p->fps, "region", "x", p->x, "y", p->y,
                          "width", p->width, "height", p->height, "scale", p->scale);
    if (!j) abort(); /* only on OOM */
    char *s = json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(j);
    if (!s) abort();
    char *copy = xstrdup(s); /* jansson's allocator may differ from free() in tests */
    free(s);
    return copy;
}

int timelapse_params_decode(const char *json, size_t len, const timelapse_limits_t *lim,
                            timelapse_params_t *out, char *msg, size_t msglen)
{
    memset(out, 0, sizeof *out);
    json_t *root = load(json, len, msg, msglen);
    if (!root) return PX_EPROTO;
    int rc = 0;
    json_t *f = json_object_get(root, "fromMs"), *t = json_object_get(root, "toMs");
    if (!json_is_integer(f) || !json_is_integer(t) ||
        !get_int(root, "frames", 0, 1000000000, &out->frames) ||
        !get_int(root, "fps", 0, 1000000000, &out->fps)) {
        rc = fail(msg, msglen, PX_EPROTO, "stored params lack fromMs/toMs/frames/fps");
    } else {
        out->from_ms = json_integer_value(f);
        out->to_ms = json_integer_value(t);
        rc = read_region(root, lim, out, msg, msglen);
        if (rc == 0) rc = check(out, lim, msg, msglen);
    }
    json_decref(root);
    return rc;
}

/* ---------------------------------------------------------------------------
 * Frames */

int64_t timelapse_frame_time(const timelapse_params_t *p, int i)
{
    if (i <= 0) return p->from_ms;
    if (i >= p->frames - 1) return p->to_ms;
    /* (to - from) * i fits easily: spans are far below 2^63 / 10^6 ms */
    return p->from_ms + (p->to_ms - p->from_ms) * i / (p->frames - 1);
}

int timelapse_frame_width(const timelapse_params_t *p)
{
    return p->width * p->scale;
}

int timelapse_frame_height(const timelapse_params_t *p)
{
    return p->height * p->scale;
}

void timelapse_frame_render(const uint8_t *canvas, int canvas_width, const timelapse_params_t *p,
                            uint8_t *out)
{
    int s = p->scale;
    size_t ow = (size_t)p->width * (size_t)s;
    for (int y = 0; y < p->height; y++) {
        const uint8_t *src = canvas + (size_t)(p->y + y) * (size_t)canvas_width + (size_t)p->x;
        uint8_t *row = out + (size_t)y * (size_t)s * ow;
        if (s == 1) {
            memcpy(row, src, ow);
            continue;
        }
        for (int x = 0; x < p->width; x++)
            memset(row + (size_t)x * (size_t)s, src[x], (size_t)s);
        for (int k = 1; k < s; k++)
            memcpy(row + (size_t)k * ow, row, ow);
    }
}
