/* imgbench — the worker's image encoders on a realistic canvas.
 *
 *   imgbench canvas    --config FILE --width W --height H --out FILE [--png FILE]
 *   imgbench snapshot  --config FILE --canvas FILE --width W --height H [--reps N]
 *                      [--level L] [--out-png FILE] [--json]
 *   imgbench timelapse --config FILE --canvas FILE --width W --height H --events N
 *                      --frames F [--reps N] [--out-png FILE] [--json]
 *
 * `canvas` turns the real r/place 2017 final canvas (1000x1000, 4-bit indexed,
 * its own palette order) into config's palette indices, mapping colours by
 * RGB (nearest when no entry matches exactly), tiles it to W x H and writes
 * the raw canvas, one byte per pixel, row-major.
 *
 * `snapshot` encodes that canvas as the snapshot job does, N times each, and
 * prints the time per encode (p50/min/max) and the sizes: the PNG alone
 * (img_png_encode at SNAP_PNG_LEVEL: encode_ms_*, png_bytes) and the job's
 * whole encode step, the PNG and the zlib'd raw canvas kept for rebuilds
 * (snap_encode from worker/snap.c: job_encode_ms_*, canvas_z_bytes; this is
 * what the worker logs as encode_ms).
 *
 * `timelapse` replays N synthetic placements (positions and colours from a
 * fixed seed, times 1..N ms) onto a copy of the canvas and builds an F-frame
 * APNG of the whole canvas (frame i at N*i/(F-1) ms) with the timelapse job's
 * own code: tl_render from worker/tl.c, fed by an in-memory event source
 * instead of pixel_events.
 *
 * The Makefile links the worker's own snap.o and tl.o (they need nothing
 * from the worker beyond libcommon); the levels come from worker/snap.h and
 * worker/tl.h (`snapshot --level` overrides SNAP_PNG_LEVEL, for measuring
 * the trade-off). With --json the figures are one JSON
 * object on stdout. Exit status: 0 done, 1 failed, 2 bad options. */
#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cfg.h"
#include "img_png.h"
#include "timelapse.h"

#include "snap.h"
#include "tl.h"

#define DEFAULT_PNG "../shared/data/rplace2017/final-2017.png"

typedef struct opts {
    const char *cmd;
    const char *config;
    const char *png;
    const char *out;
    const char *canvas;
    const char *out_png;
    int width, height;
    int reps;
    int level; /* -1: the worker's constant */
    long events;
    int frames;
    bool json;
} opts_t;

/* ---------------------------------------------------------------------------
 * Helpers */

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Nearest-rank median of n sorted values. */
static double median(const double *v, int n)
{
    return v[(n + 1) / 2 - 1];
}

static uint64_t rng_state = 0x9E3779B97F4A7C15u;

static uint64_t rng(void)
{
    /* xorshift64*: deterministic, so every run replays the same events */
    uint64_t x = rng_state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    rng_state = x;
    return x * 0x2545F4914F6CDD1Du;
}

static int read_file(const char *path, uint8_t **data, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) return -errno;
    uint8_t *buf = NULL;
    size_t n = 0, cap = 0;
    for (;;) {
        if (cap - n < 65536) {
            cap = cap ? cap * 2 : 1 << 20;
            uint8_t *p = realloc(buf, cap);
            if (!p) {
                free(buf);
                fclose(f);
                return -ENOMEM;
            }
            buf = p;
        }
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (got == 0) break;
    }
    int rc = ferror(f) ? -EIO : 0;
    fclose(f);
    if (rc) {
        free(buf);
        return rc;
    }
    *data = buf;
    *len = n;
    return 0;
}

static int write_file(const char *path, const uint8_t *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    if (!f) return -errno;
    size_t put = fwrite(data, 1, len, f);
    int rc = put == len ? 0 : -EIO;
    if (fclose(f) != 0 && rc == 0) rc = -errno;
    return rc;
}

static int load_cfg(const opts_t *o, cfg_t *cfg)
{
    char err[512];
    if (cfg_load(cfg, o->config, NULL, err, sizeof err) != 0) {
        fprintf(stderr, "imgbench: %s\n", err);
        return -1;
    }
    /* the canvas under test, whatever size the file configures */
    cfg->canvas.width = o->width;
    cfg->canvas.height = o->height;
    return 0;
}

/* Reads --canvas: exactly width*height bytes. */
static uint8_t *load_canvas(const opts_t *o)
{
    uint8_t *px = NULL;
    size_t len = 0;
    int rc = read_file(o->canvas, &px, &len);
    if (rc) {
        fprintf(stderr, "imgbench: %s: %s\n", o->canvas, px_strerror(rc));
        return NULL;
    }
    if (len != (size_t)o->width * (size_t)o->height) {
        fprintf(stderr, "imgbench: %s is %zu bytes, not %dx%d\n", o->canvas, len, o->width,
                o->height);
        free(px);
        return NULL;
    }
    return px;
}

/* ---------------------------------------------------------------------------
 * canvas */

static int colour_distance(uint32_t a, uint32_t b)
{
    int dr = (int)(a >> 16 & 0xff) - (int)(b >> 16 & 0xff);
    int dg = (int)(a >> 8 & 0xff) - (int)(b >> 8 & 0xff);
    int db = (int)(a & 0xff) - (int)(b & 0xff);
    return dr * dr + dg * dg + db * db;
}

static int cmd_canvas(const opts_t *o)
{
    cfg_t cfg;
    if (load_cfg(o, &cfg)) return 1;
    uint8_t *png = NULL;
    size_t png_len = 0;
    int rc = read_file(o->png, &png, &png_len);
    if (rc) {
        fprintf(stderr, "imgbench: %s: %s\n", o->png, px_strerror(rc));
        return 1;
    }
    uint8_t *src = NULL;
    int sw = 0, sh = 0, npal = 0;
    uint32_t pal[256];
    rc = img_png_decode_indexed(png, png_len, &src, &sw, &sh, pal, &npal);
    free(png);
    if (rc) {
        fprintf(stderr, "imgbench: %s: %s\n", o->png, px_strerror(rc));
        return 1;
    }

    /* the image's palette entry -> config's index, by RGB */
    uint8_t map[256];
    int inexact = 0;
    for (int i = 0; i < npal; i++) {
        int best = 0;
        for (int j = 1; j < cfg.canvas.palette_len; j++)
            if (colour_distance(pal[i], cfg.canvas.palette[j]) <
                colour_distance(pal[i], cfg.canvas.palette[best]))
                best = j;
        map[i] = (uint8_t)best;
        if (colour_distance(pal[i], cfg.canvas.palette[best]) != 0) inexact++;
    }

    size_t n = (size_t)o->width * (size_t)o->height;
    uint8_t *out = malloc(n);
    if (!out) {
        free(src);
        fprintf(stderr, "imgbench: no memory for a %dx%d canvas\n", o->width, o->height);
        return 1;
    }
    for (int y = 0; y < o->height; y++) {
        const uint8_t *s = src + (size_t)(y % sh) * (size_t)sw;
        uint8_t *d = out + (size_t)y * (size_t)o->width;
        for (int x = 0; x < o->width; x++)
            d[x] = map[s[x % sw]];
    }
    rc = write_file(o->out, out, n);
    if (rc)
        fprintf(stderr, "imgbench: %s: %s\n", o->out, px_strerror(rc));
    else
        fprintf(stderr,
                "imgbench: %s: %dx%d canvas from %s (%dx%d, %d colours, %d mapped to the "
                "nearest config colour)\n",
                o->out, o->width, o->height, o->png, sw, sh, npal, inexact);
    free(out);
    free(src);
    return rc ? 1 : 0;
}

/* ---------------------------------------------------------------------------
 * snapshot */

/* Times reps runs of one encoder; ms (out, reps entries) ends sorted. */
typedef int (*encode_fn)(const cfg_t *cfg, const uint8_t *px, int level, uint8_t **png,
                         size_t *png_len, size_t *extra_len, char *err, size_t errlen);

static int png_only(const cfg_t *cfg, const uint8_t *px, int level, uint8_t **png, size_t *png_len,
                    size_t *extra_len, char *err, size_t errlen)
{
    *extra_len = 0;
    int rc = img_png_encode(px, cfg->canvas.width, cfg->canvas.height, cfg->canvas.palette,
                            cfg->canvas.palette_len, level, png, png_len);
    if (rc) snprintf(err, errlen, "img_png_encode: %s", px_strerror(rc));
    return rc;
}

static int whole_step(const cfg_t *cfg, const uint8_t *px, int level, uint8_t **png,
                      size_t *png_len, size_t *extra_len, char *err, size_t errlen)
{
    (void)level; /* snap_encode has its own */
    uint8_t *cz = NULL;
    int rc = snap_encode(cfg, px, png, png_len, &cz, extra_len, err, errlen);
    free(cz);
    return rc;
}

static int time_encodes(const cfg_t *cfg, const uint8_t *px, int level, int reps, encode_fn fn,
                        double *ms, uint8_t **png, size_t *png_len, size_t *extra_len)
{
    char err[256] = "";
    int rc = 0;
    for (int r = 0; rc == 0 && r < reps; r++) {
        free(*png);
        *png = NULL;
        double t0 = now_ms();
        rc = fn(cfg, px, level, png, png_len, extra_len, err, sizeof err);
        ms[r] = now_ms() - t0;
    }
    if (rc)
        fprintf(stderr, "imgbench: %s\n", err);
    else
        qsort(ms, (size_t)reps, sizeof *ms, cmp_double);
    return rc;
}

static int cmd_snapshot(const opts_t *o)
{
    cfg_t cfg;
    if (load_cfg(o, &cfg)) return 1;
    uint8_t *px = load_canvas(o);
    if (!px) return 1;
    /* --level only changes the PNG figures; the job step runs as built */
    int level = o->level >= 0 ? o->level : SNAP_PNG_LEVEL;
    double *ms = calloc((size_t)o->reps, sizeof *ms);
    double *job_ms = calloc((size_t)o->reps, sizeof *job_ms);
    uint8_t *png = NULL, *job_png = NULL;
    size_t png_len = 0, job_png_len = 0, cz_len = 0, none = 0;
    int rc = ms && job_ms ? 0 : -ENOMEM;
    if (rc == 0) rc = time_encodes(&cfg, px, level, o->reps, png_only, ms, &png, &png_len, &none);
    if (rc == 0)
        rc = time_encodes(&cfg, px, level, o->reps, whole_step, job_ms, &job_png, &job_png_len,
                          &cz_len);
    if (rc == 0 && o->out_png) {
        rc = write_file(o->out_png, png, png_len);
        if (rc) fprintf(stderr, "imgbench: %s: %s\n", o->out_png, px_strerror(rc));
    }
    if (rc == 0) {
        int n = o->reps;
        if (o->json)
            printf("{\"encode_ms_p50\":%.3f,\"encode_ms_min\":%.3f,\"encode_ms_max\":%.3f,"
                   "\"png_bytes\":%zu,\"width\":%d,\"height\":%d,\"level\":%d,\"reps\":%d,"
                   "\"job_encode_ms_p50\":%.3f,\"job_encode_ms_min\":%.3f,"
                   "\"job_encode_ms_max\":%.3f,\"job_png_level\":%d,\"canvas_z_level\":%d,"
                   "\"canvas_z_bytes\":%zu}\n",
                   median(ms, n), ms[0], ms[n - 1], png_len, o->width, o->height, level, n,
                   median(job_ms, n), job_ms[0], job_ms[n - 1], SNAP_PNG_LEVEL, SNAP_CANVAS_Z_LEVEL,
                   cz_len);
        else
            printf("snapshot %dx%d\n"
                   "  png (img_png_encode, level %d):       p50 %7.2f ms, min %7.2f, max %7.2f "
                   "(%d reps); %zu bytes\n"
                   "  job encode step (snap_encode: png level %d + canvas_z level %d):\n"
                   "                                        p50 %7.2f ms, min %7.2f, max %7.2f; "
                   "png %zu + canvas_z %zu bytes\n",
                   o->width, o->height, level, median(ms, n), ms[0], ms[n - 1], n, png_len,
                   SNAP_PNG_LEVEL, SNAP_CANVAS_Z_LEVEL, median(job_ms, n), job_ms[0], job_ms[n - 1],
                   job_png_len, cz_len);
    }
    free(job_png);
    free(png);
    free(job_ms);
    free(ms);
    free(px);
    return rc ? 1 : 0;
}

/* ---------------------------------------------------------------------------
 * timelapse */

typedef struct synth {
    const canvas_event_t *ev;
    size_t n;
} synth_t;

/* tl_scan_fn over an array of events. */
static int scan_synth(void *src, db_event_fn fn, void *fn_arg)
{
    const synth_t *s = src;
    for (size_t i = 0; i < s->n; i++) {
        int rc = fn(fn_arg, &s->ev[i]);
        if (rc) return rc;
    }
    return 0;
}

static int cmd_timelapse(const opts_t *o)
{
    cfg_t cfg;
    if (load_cfg(o, &cfg)) return 1;
    uint8_t *base = load_canvas(o);
    if (!base) return 1;
    size_t npix = (size_t)o->width * (size_t)o->height;
    uint8_t *canvas = malloc(npix);
    canvas_event_t *ev = calloc((size_t)o->events ? (size_t)o->events : 1, sizeof *ev);
    double *ms = calloc((size_t)o->reps, sizeof *ms);
    if (!canvas || !ev || !ms) {
        fprintf(stderr, "imgbench: no memory for %ld events\n", o->events);
        free(canvas);
        free(ev);
        free(ms);
        free(base);
        return 1;
    }
    for (long i = 0; i < o->events; i++) {
        ev[i].seq = i + 1;
        ev[i].x = (int)(rng() % (uint64_t)o->width);
        ev[i].y = (int)(rng() % (uint64_t)o->height);
        ev[i].color = (int)(rng() % (uint64_t)cfg.canvas.palette_len);
        ev[i].time_ms = i + 1;
    }
    /* frame 0 is the canvas before the first event, the last one after the
     * last event */
    timelapse_params_t p = {.from_ms = 0,
                            .to_ms = o->events > 0 ? o->events : 1,
                            .frames = o->frames,
                            .fps = o->frames < TIMELAPSE_MAX_FPS ? o->frames : TIMELAPSE_MAX_FPS,
                            .x = 0,
                            .y = 0,
                            .width = o->width,
                            .height = o->height,
                            .scale = 1};
    synth_t src = {.ev = ev, .n = (size_t)o->events};

    int level = TL_PNG_LEVEL;
    uint8_t *apng = NULL;
    size_t apng_len = 0;
    int64_t replayed = 0;
    char err[256] = "";
    int rc = 0;
    for (int r = 0; rc == 0 && r < o->reps; r++) {
        free(apng);
        apng = NULL;
        memcpy(canvas, base, npix);
        double t0 = now_ms();
        rc = tl_render(&cfg, &p, canvas, scan_synth, &src, NULL, 0, NULL, NULL, &apng, &apng_len, &replayed,
                       err, sizeof err);
        ms[r] = now_ms() - t0;
    }
    if (rc) {
        fprintf(stderr, "imgbench: timelapse: %s\n", err[0] ? err : px_strerror(rc));
    } else if (o->out_png) {
        rc = write_file(o->out_png, apng, apng_len);
        if (rc) fprintf(stderr, "imgbench: %s: %s\n", o->out_png, px_strerror(rc));
    }
    if (rc == 0) {
        qsort(ms, (size_t)o->reps, sizeof *ms, cmp_double);
        double total = median(ms, o->reps);
        double fps = o->frames / (total / 1e3), eps = (double)replayed / (total / 1e3);
        if (o->json)
            printf("{\"total_ms\":%.3f,\"frames_per_s\":%.2f,\"events_per_s\":%.0f,"
                   "\"apng_bytes\":%zu,\"frames\":%d,\"events\":%lld,\"width\":%d,\"height\":%d,"
                   "\"level\":%d,\"reps\":%d}\n",
                   total, fps, eps, apng_len, o->frames, (long long)replayed, o->width, o->height,
                   level, o->reps);
        else
            printf("timelapse %dx%d level %d: %d frames, %lld events in %.1f ms = %.2f frames/s, "
                   "%.0f events/s; apng %zu bytes\n",
                   o->width, o->height, level, o->frames, (long long)replayed, total, fps, eps,
                   apng_len);
    }
    free(apng);
    free(ms);
    free(ev);
    free(canvas);
    free(base);
    return rc ? 1 : 0;
}

/* ---------------------------------------------------------------------------
 * Options */

static void usage(FILE *f)
{
    fputs("usage: imgbench canvas    --config FILE --width W --height H --out FILE [--png FILE]\n"
          "       imgbench snapshot  --config FILE --canvas FILE --width W --height H [--reps N]\n"
          "                          [--level L] [--out-png FILE] [--json]\n"
          "       imgbench timelapse --config FILE --canvas FILE --width W --height H\n"
          "                          --events N --frames F [--reps N] [--out-png FILE] [--json]\n",
          f);
}

static bool parse_long(const char *s, long lo, long hi, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) return false;
    *out = v;
    return true;
}

static int parse_opts(int argc, char **argv, opts_t *o)
{
    *o =
        (opts_t){.config = "config.ini", .png = DEFAULT_PNG, .reps = -1, .level = -1, .events = -1};
    if (argc < 2) return -1;
    o->cmd = argv[1];
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--json") == 0) {
            o->json = true;
            continue;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "imgbench: %s needs a value\n", a);
            return -1;
        }
        const char *v = argv[++i];
        long n = 0;
        bool ok = true;
        if (strcmp(a, "--config") == 0)
            o->config = v;
        else if (strcmp(a, "--png") == 0)
            o->png = v;
        else if (strcmp(a, "--out") == 0)
            o->out = v;
        else if (strcmp(a, "--canvas") == 0)
            o->canvas = v;
        else if (strcmp(a, "--out-png") == 0)
            o->out_png = v;
        else if (strcmp(a, "--width") == 0 && (ok = parse_long(v, 1, CFG_MAX_DIM, &n)))
            o->width = (int)n;
        else if (strcmp(a, "--height") == 0 && (ok = parse_long(v, 1, CFG_MAX_DIM, &n)))
            o->height = (int)n;
        else if (strcmp(a, "--reps") == 0 && (ok = parse_long(v, 1, 100000, &n)))
            o->reps = (int)n;
        else if (strcmp(a, "--level") == 0 && (ok = parse_long(v, 0, 9, &n)))
            o->level = (int)n;
        else if (strcmp(a, "--events") == 0 && (ok = parse_long(v, 0, 100000000, &n)))
            o->events = n;
        else if (strcmp(a, "--frames") == 0 &&
                 (ok = parse_long(v, TIMELAPSE_MIN_FRAMES, 100000, &n)))
            o->frames = (int)n;
        else if (ok) {
            fprintf(stderr, "imgbench: unknown option %s\n", a);
            return -1;
        }
        if (!ok) {
            fprintf(stderr, "imgbench: %s: bad value \"%s\"\n", a, v);
            return -1;
        }
    }
    if (strcmp(o->cmd, "canvas") != 0 && strcmp(o->cmd, "snapshot") != 0 &&
        strcmp(o->cmd, "timelapse") != 0) {
        fprintf(stderr, "imgbench: unknown command %s\n", o->cmd);
        return -1;
    }
    if (o->width < 1 || o->height < 1) {
        fprintf(stderr, "imgbench: --width and --height are required\n");
        return -1;
    }
    if (strcmp(o->cmd, "canvas") == 0) {
        if (!o->out) {
            fprintf(stderr, "imgbench: canvas needs --out\n");
            return -1;
        }
        return 0;
    }
    if (!o->canvas) {
        fprintf(stderr, "imgbench: %s needs --canvas\n", o->cmd);
        return -1;
    }
    if (strcmp(o->cmd, "snapshot") == 0) {
        if (o->reps < 0) o->reps = 20;
        return 0;
    }
    /* timelapse */
    if (o->events < 0 || o->frames < TIMELAPSE_MIN_FRAMES) {
        fprintf(stderr, "imgbench: timelapse needs --events and --frames\n");
        return -1;
    }
    if (o->level >= 0) {
        fprintf(stderr, "imgbench: timelapse uses TL_PNG_LEVEL; --level is for snapshot\n");
        return -1;
    }
    if (o->reps < 0) o->reps = 1;
    return 0;
}

int main(int argc, char **argv)
{
    opts_t o;
    if (parse_opts(argc, argv, &o) != 0) {
        usage(stderr);
        return 2;
    }
    if (strcmp(o.cmd, "canvas") == 0) return cmd_canvas(&o);
    if (strcmp(o.cmd, "snapshot") == 0) return cmd_snapshot(&o);
    return cmd_timelapse(&o);
}
