#include "ccache.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "img_png.h"
#include "log.h"
#include "xalloc.h"
#include "metrics.h"

/* One immutable encoded canvas. Responses are MHD objects shared by every
 * request that serves this entry (MHD refcounts them per queue); they are
 * only queued while holding the cache mutex, so replacing the entry cannot
 * free one under a queuing thread. */
typedef struct entry {
    int64_t seq;
    int64_t fetched_ms;
    char etag[32];
    uint8_t *raw; /* kept for lazily encoding the PNG */
    size_t len;
    struct MHD_Response *r_raw, *r_gz, *r_png;
} entry_t;

struct ccache {
    app_t *app;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool refreshing;
    entry_t *cur;
};

static void entry_free(entry_t *e)
{
    if (!e) return;
    if (e->r_raw) MHD_destroy_response(e->r_raw);
    if (e->r_gz) MHD_destroy_response(e->r_gz);
    if (e->r_png) MHD_destroy_response(e->r_png);
    free(e->raw);
    free(e);
}

ccache_t *ccache_new(app_t *app)
{
    ccache_t *c = xcalloc(1, sizeof *c);
    c->app = app;
    pthread_mutex_init(&c->mu, NULL);
    pthread_cond_init(&c->cv, NULL);
    return c;
}

void ccache_free(ccache_t *c)
{
    if (!c) return;
    entry_free(c->cur);
    pthread_mutex_destroy(&c->mu);
    pthread_cond_destroy(&c->cv);
    free(c);
}

void ccache_invalidate(ccache_t *c)
{
    pthread_mutex_lock(&c->mu);
    if (c->cur) c->cur->fetched_ms = 0;
    pthread_mutex_unlock(&c->mu);
}

static void set_headers(const app_t *app, struct MHD_Response *r, const entry_t *e,
                        const char *ctype)
{
    char v[32];
    MHD_add_response_header(r, "Content-Type", ctype);
    MHD_add_response_header(r, "ETag", e->etag);
    MHD_add_response_header(r, "Cache-Control", "no-cache");
    MHD_add_response_header(r, "Vary", "Accept-Encoding");
    snprintf(v, sizeof v, "%lld", (long long)e->seq);
    MHD_add_response_header(r, "X-Canvas-Seq", v);
    snprintf(v, sizeof v, "%d", app->geom.width);
    MHD_add_response_header(r, "X-Canvas-Width", v);
    snprintf(v, sizeof v, "%d", app->geom.height);
    MHD_add_response_header(r, "X-Canvas-Height", v);
}

static int gzip_bytes(const uint8_t *in, size_t len, uint8_t **out, size_t *out_len)
{
    z_stream zs;
    memset(&zs, 0, sizeof zs);
    int level = len > (1u << 20) ? 1 : 6;
    if (deflateInit2(&zs, level, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
        return PX_EBACKEND;
    size_t cap = deflateBound(&zs, (uLong)len) + 32;
    uint8_t *o = xmalloc(cap);
    zs.next_in = (Bytef *)(uintptr_t)in;
    zs.avail_in = (uInt)len;
    zs.next_out = o;
    zs.avail_out = (uInt)cap;
    int rc = deflate(&zs, Z_FINISH);
    deflateEnd(&zs);
    if (rc != Z_STREAM_END) {
        free(o);
        return PX_EBACKEND;
    }
    *out = o;
    *out_len = cap - zs.avail_out;
    return 0;
}

/* Reads Redis and builds a new entry. Runs without the mutex. */
static entry_t *fetch(ccache_t *c, req_t *rq)
{
    uint8_t *data;
    size_t len;
    int64_t seq;
    int rc = rds_canvas_get(req_rds(rq), &data, &len, &seq);
    if (rc) {
        log_warn("canvas_fetch", "%s", rc == PX_ENOCANVAS ? "no canvas in Redis"
                                                          : rds_errstr(req_rds(rq)));
        return NULL;
    }
    size_t want = canvas_size(&c->app->geom);
    if (len != want) {
        log_error("canvas_fetch", "Redis canvas is %zu bytes, expected %zu", len, want);
        free(data);
        return NULL;
    }
    entry_t *e = xcalloc(1, sizeof *e);
    e->seq = seq;
    e->fetched_ms = app_mono_ms();
    snprintf(e->etag, sizeof e->etag, "\"%lld\"", (long long)seq);
    e->raw = data;
    e->len = len;
    /* MUST_COPY: MHD may still be sending this body after the entry is
     * replaced and freed. */
    e->r_raw = MHD_create_response_from_buffer(len, data, MHD_RESPMEM_MUST_COPY);
    set_headers(c->app, e->r_raw, e, "application/octet-stream");
    uint8_t *gz;
    size_t gzlen;
    if (gzip_bytes(data, len, &gz, &gzlen) == 0) {
        e->r_gz = MHD_create_response_from_buffer(gzlen, gz, MHD_RESPMEM_MUST_FREE);
        set_headers(c->app, e->r_gz, e, "application/octet-stream");
        MHD_add_response_header(e->r_gz, "Content-Encoding", "gzip");
    }
    return e;
}

static bool wants_gzip(req_t *rq)
{
    const char *ae = req_header(rq, "Accept-Encoding");
    if (!ae) return false;
    const char *g = strstr(ae, "gzip");
    if (!g) return false;
    const char *q = strstr(g, "q=0");
    return !(q && (q[3] == '\0' || q[3] == ',' || (q[3] == '.' && strspn(q + 4, "0") > 0 &&
                                                     (q[4 + strspn(q + 4, "0")] == '\0' ||
                                                      q[4 + strspn(q + 4, "0")] == ','))));
}

static bool etag_matches(const char *inm, const char *etag)
{
    if (!inm) return false;
    if (!strcmp(inm, "*")) return true;
    return strstr(inm, etag) != NULL;
}

enum MHD_Result ccache_reply(ccache_t *c, req_t *rq, ccache_kind_t kind)
{
    int64_t now = app_mono_ms();
    pthread_mutex_lock(&c->mu);
    for (;;) {
        bool fresh = c->cur && now - c->cur->fetched_ms < c->app->cfg->canvas.cache_ms;
        if (fresh || (c->refreshing && c->cur)) break;
        if (c->refreshing) {
            pthread_cond_wait(&c->cv, &c->mu);
            continue;
        }
        c->refreshing = true;
        pthread_mutex_unlock(&c->mu);
        entry_t *e = fetch(c, rq);
        pthread_mutex_lock(&c->mu);
        c->refreshing = false;
        pthread_cond_broadcast(&c->cv);
        if (!e) {
            if (c->cur) break; /* serve the last good one */
            pthread_mutex_unlock(&c->mu);
            metrics_backend_error(METRICS_REDIS);
            return reply_error(rq, 503, "UNAVAILABLE", "canvas store unavailable");
        }
        entry_free(c->cur);
        c->cur = e;
        break;
    }
    entry_t *e = c->cur;
    enum MHD_Result res;
    if (etag_matches(req_header(rq, "If-None-Match"), e->etag)) {
        pthread_mutex_unlock(&c->mu);
        struct MHD_Response *r = MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);
        char v[32];
        snprintf(v, sizeof v, "%lld", (long long)e->seq);
        MHD_add_response_header(r, "ETag", e->etag);
        MHD_add_response_header(r, "X-Canvas-Seq", v);
        MHD_add_response_header(r, "Cache-Control", "no-cache");
        res = reply_response(rq, 304, r);
        MHD_destroy_response(r);
        return res;
    }
    struct MHD_Response *r = NULL;
    if (kind == CCACHE_PNG) {
        if (!e->r_png) {
            uint8_t *png;
            size_t plen;
            const cfg_t *cfg = c->app->cfg;
            if (img_png_encode(e->raw, c->app->geom.width, c->app->geom.height,
                               cfg->canvas.palette, cfg->canvas.palette_len, 1, &png,
                               &plen) == 0) {
                e->r_png = MHD_create_response_from_buffer(plen, png, MHD_RESPMEM_MUST_FREE);
                set_headers(c->app, e->r_png, e, "image/png");
            }
        }
        r = e->r_png;
    } else {
        r = kind == CCACHE_GZIP && wants_gzip(rq) && e->r_gz ? e->r_gz : e->r_raw;
    }
    if (!r) {
        pthread_mutex_unlock(&c->mu);
        return reply_error(rq, 500, "INTERNAL", "canvas encoding failed");
    }
    res = reply_response(rq, 200, r);
    pthread_mutex_unlock(&c->mu);
    return res;
}
