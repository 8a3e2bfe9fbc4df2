#include "http.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "hub.h"
#include "log.h"
#include "proto.h"
#include "routes.h"
#include "wsk.h"
#include "xalloc.h"
#include "metrics.h"

struct http_server {
    app_t *app;
    struct MHD_Daemon *d;
    int port;
    bool quiesced;
    MHD_socket lfd;
};

/* ------------------------------------------------------------------ backends */

typedef struct backend {
    rds_t *rds;
    db_t *db;
} backend_t;

static pthread_key_t be_key;
static pthread_once_t be_once = PTHREAD_ONCE_INIT;

static void be_destroy(void *p)
{
    backend_t *b = p;
    rds_free(b->rds);
    db_free(b->db);
    free(b);
}

static void be_init(void) { pthread_key_create(&be_key, be_destroy); }

static backend_t *backend(app_t *app)
{
    pthread_once(&be_once, be_init);
    backend_t *b = pthread_getspecific(be_key);
    if (!b) {
        b = xcalloc(1, sizeof *b);
        b->rds = rds_new(app->cfg);
        b->db = db_new(app->cfg->postgres.url, app->cfg->postgres.timeout_ms);
        pthread_setspecific(be_key, b);
        log_thread_name("http");
    }
    return b;
}

rds_t *req_rds(req_t *rq) { return backend(rq->app)->rds; }
db_t *req_db(req_t *rq) { return backend(rq->app)->db; }

/* ------------------------------------------------------------------ responses */

static void common_headers(req_t *rq, struct MHD_Response *resp)
{
    MHD_add_response_header(resp, "X-Request-Id", rq->rid);
}

enum MHD_Result reply_response(req_t *rq, unsigned status, struct MHD_Response *resp)
{
    rq->_replied = true;
    rq->_status = (int)status;
    return MHD_queue_response(rq->conn, status, resp);
}

bool req_ip_group(req_t *rq, char out[PROTO_IP_GROUP_LEN])
{
    if (rq->app->cfg->cooldown.per_ip && proto_ip_group(rq->ip, out)) return true;
    out[0] = '\0';
    return false;
}

bool req_etag_matches(req_t *rq, const char *etag)
{
    const char *inm = req_header(rq, "If-None-Match");
    if (!inm) return false;
    if (strcmp(inm, "*") == 0) return true;
    size_t n = strlen(etag);
    for (const char *p = strstr(inm, etag); p; p = strstr(p + 1, etag)) {
        char after = p[n];
        if (after == '\0' || after == ',' || after == ' ' || after == '\t') return true;
    }
    return false;
}

/* Both answers carry the same caching headers: a 304 refreshes them. */
static enum MHD_Result immutable_finish(req_t *rq, unsigned status, struct MHD_Response *resp,
                              const char *etag)
{
    MHD_add_response_header(resp, "Cache-Control", HTTP_IMMUTABLE_CACHE_CONTROL);
    MHD_add_response_header(resp, "ETag", etag);
    MHD_add_response_header(resp, "X-Request-Id", rq->rid);
    enum MHD_Result r = reply_response(rq, status, resp);
    MHD_destroy_response(resp);
    return r;
}

enum MHD_Result reply_not_modified(req_t *rq, const char *etag)
{
    return immutable_finish(rq, 304, MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT), etag);
}

enum MHD_Result reply_immutable(req_t *rq, const char *etag, const char *content_type,
                                uint8_t *body, size_t len)
{
    struct MHD_Response *resp = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
    MHD_add_response_header(resp, "Content-Type", content_type);
    return immutable_finish(rq, 200, resp, etag);
}

enum MHD_Result reply_json(req_t *rq, unsigned status, json_t *body)
{
    return reply_json_ex(rq, status, body, NULL, NULL);
}

enum MHD_Result reply_json_ex(req_t *rq, unsigned status, json_t *body, const char *hname,
                              const char *hvalue)
{
    char *s = json_dumps(body, JSON_COMPACT | JSON_REAL_PRECISION(10));
    json_decref(body);
    if (!s) s = xstrdup("{}");
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(strlen(s), s, MHD_RESPMEM_MUST_FREE);
    MHD_add_response_header(resp, "Content-Type", "application/json");
    MHD_add_response_header(resp, "Cache-Control", "no-store");
    if (hname) MHD_add_response_header(resp, hname, hvalue);
    common_headers(rq, resp);
    enum MHD_Result r = reply_response(rq, status, resp);
    MHD_destroy_response(resp);
    return r;
}

enum MHD_Result reply_error_ex(req_t *rq, unsigned status, const char *code, json_t *extra,
                               const char *hname, const char *hvalue, const char *msg)
{
    /* messages may quote client bytes: keep them printable ASCII so the
     * JSON is always valid */
    char clean[512];
    size_t i = 0;
    for (; msg[i] && i < sizeof clean - 1; i++)
        clean[i] = (msg[i] >= 0x20 && msg[i] < 0x7f) ? msg[i] : '?';
    clean[i] = '\0';
    json_t *err = json_pack("{s:s,s:s}", "code", code, "message", clean);
    if (extra) {
        json_object_update(err, extra);
        json_decref(extra);
    }
    json_t *wrap = json_pack("{s:o}", "error", err);
    char *s = json_dumps(wrap, JSON_COMPACT | JSON_REAL_PRECISION(10));
    json_decref(wrap);
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(strlen(s), s, MHD_RESPMEM_MUST_FREE);
    MHD_add_response_header(resp, "Content-Type", "application/json");
    MHD_add_response_header(resp, "Cache-Control", "no-store");
    if (hname) MHD_add_response_header(resp, hname, hvalue);
    if (status == 405) MHD_add_response_header(resp, "Allow", route_allow(rq->url));
    common_headers(rq, resp);
    enum MHD_Result r = reply_response(rq, status, resp);
    MHD_destroy_response(resp);
    return r;
}

enum MHD_Result reply_error(req_t *rq, unsigned status, const char *code, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return reply_error_ex(rq, status, code, NULL, NULL, NULL, msg);
}

/* ------------------------------------------------------------------ helpers */

const char *req_arg(req_t *rq, const char *name)
{
    return MHD_lookup_connection_value(rq->conn, MHD_GET_ARGUMENT_KIND, name);
}

const char *req_header(req_t *rq, const char *name)
{
    return MHD_lookup_connection_value(rq->conn, MHD_HEADER_KIND, name);
}

bool req_int_arg_or_reply(req_t *rq, const char *name, long lo, long hi, long def, long *out,
                          enum MHD_Result *res)
{
    const char *v = req_arg(rq, name);
    if (!v) {
        *out = def;
        return true;
    }
    int64_t n;
    if (!proto_parse_i64(v, strlen(v), &n) || n < lo || n > hi) {
        *res = reply_error(rq, 400, "BAD_REQUEST", "%s must be an integer in %ld..%ld", name, lo,
                           hi);
        return false;
    }
    *out = (long)n;
    return true;
}

bool req_session_id(req_t *rq, char sid[65])
{
    const char *v = MHD_lookup_connection_value(rq->conn, MHD_COOKIE_KIND,
                                                rq->app->cfg->auth.cookie_name);
    if (!v) {
        const char *a = req_header(rq, "Authorization");
        if (a && !strncasecmp(a, "Bearer ", 7)) v = a + 7;
    }
    if (!v || strlen(v) != 64 || !proto_hex_valid(v, 64)) return false;
    memcpy(sid, v, 65);
    return true;
}

/* Loads the session once per request: 0, PX_EPROTO (no session id),
 * PX_ENOTFOUND or PX_EBACKEND. */
static int load_session(req_t *rq)
{
    if (rq->_sess_loaded) return rq->_sess_rc;
    rq->_sess_loaded = true;
    if (!req_session_id(rq, rq->_sid)) return rq->_sess_rc = PX_EPROTO;
    rq->_sess_rc =
        rds_session_get(req_rds(rq), rq->_sid, rq->app->cfg->auth.session_ttl_s, &rq->_sess);
    return rq->_sess_rc;
}

bool req_session_or_reply(req_t *rq, rds_session_t *out, char sid[65], enum MHD_Result *res)
{
    int rc = load_session(rq);
    if (rc == PX_EPROTO) {
        *res = reply_error(rq, 401, "UNAUTHORIZED",
                           "no session: POST /api/v1/auth/guest first (cookie or Bearer token)");
        return false;
    }
    if (rc == PX_ENOTFOUND) {
        *res = reply_error(rq, 401, "UNAUTHORIZED", "session expired or unknown");
        return false;
    }
    if (rc) {
        metrics_backend_error(METRICS_REDIS);
        log_warn("redis_error", "session lookup: %s", rds_errstr(req_rds(rq)));
        *res = reply_error(rq, 503, "UNAVAILABLE", "session store unavailable");
        return false;
    }
    *out = rq->_sess;
    if (sid) memcpy(sid, rq->_sid, 65);
    return true;
}

bool req_admin_or_reply(req_t *rq, rds_session_t *out, char sid[65], enum MHD_Result *res)
{
    if (!req_session_or_reply(rq, out, sid, res)) return false;
    if (!out->admin) {
        *res = reply_error(rq, 403, "FORBIDDEN", "admin role required");
        return false;
    }
    return true;
}

bool req_csrf_or_reply(req_t *rq, enum MHD_Result *res)
{
    const char *h = req_header(rq, "X-Place-CSRF");
    if (!h || strcmp(h, "1") != 0) {
        *res = reply_error(rq, 403, "FORBIDDEN", "missing X-Place-CSRF header");
        return false;
    }
    const char *origin = req_header(rq, "Origin");
    if (origin &&
        !wsk_origin_allowed(origin, rq->app->cfg->ws.allowed_origins, req_header(rq, "Host"))) {
        *res = reply_error(rq, 403, "FORBIDDEN", "origin not allowed");
        return false;
    }
    return true;
}

/* ------------------------------------------------------------------ dispatch */

static bool trusted_proxy(const cfg_t *cfg, const char *ip)
{
    const char *p = cfg->http.trusted_proxies;
    size_t n = strlen(ip);
    while (*p) {
        while (*p == ' ' || *p == ',') p++;
        size_t l = strcspn(p, ", ");
        if (l == n && !strncmp(p, ip, n)) return true;
        p += l;
    }
    return false;
}

static void client_ip(req_t *rq)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(rq->conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    snprintf(rq->ip, sizeof rq->ip, "unknown");
    if (ci && ci->client_addr) {
        const struct sockaddr *sa = ci->client_addr;
        if (sa->sa_family == AF_INET)
            inet_ntop(AF_INET, &((const struct sockaddr_in *)(const void *)sa)->sin_addr,
                      rq->ip, sizeof rq->ip);
        else if (sa->sa_family == AF_INET6)
            inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr,
                      rq->ip, sizeof rq->ip);
    }
    const char *xff = req_header(rq, "X-Forwarded-For");
    if (xff && trusted_proxy(rq->app->cfg, rq->ip)) {
        const char *last = strrchr(xff, ',');
        last = last ? last + 1 : xff;
        while (*last == ' ') last++;
        size_t l = strcspn(last, " ");
        if (l > 0 && l < sizeof rq->ip) {
            memcpy(rq->ip, last, l);
            rq->ip[l] = '\0';
        }
    }
}

/* Sliding one-minute windows in Redis (rds_rate_limit). A Redis
 * failure lets the request through: the limits protect the service, they
 * must not take it down. */
static bool limit_or_reply(req_t *rq, route_limit_t limit, enum MHD_Result *res)
{
    const cfg_t *cfg = rq->app->cfg;
    int max;
    const char *kind;
    metrics_limit_t m;
    char key[160];
    switch (limit) {
    case ROUTE_LIMIT_AUTH: max = cfg->limits.auth_per_min, kind = "auth", m = METRICS_LIMIT_AUTH; break;
    case ROUTE_LIMIT_GUEST: max = cfg->limits.guest_per_min, kind = "guest", m = METRICS_LIMIT_GUEST; break;
    case ROUTE_LIMIT_CANVAS: max = cfg->limits.canvas_per_min, kind = "canvas", m = METRICS_LIMIT_CANVAS; break;
    case ROUTE_LIMIT_API: max = cfg->limits.api_per_min, kind = "api", m = METRICS_LIMIT_API; break;
    default: return true;
    }
    if (max <= 0) return true;
    const char *who = rq->ip;
    char uid[48];
    if (limit == ROUTE_LIMIT_API && load_session(rq) == 0) { /* per user */
        snprintf(uid, sizeof uid, "u:%s", rq->_sess.user_id);
        who = uid;
    }
    snprintf(key, sizeof key, "%s:%s", kind, who);
    bool allowed = true;
    int64_t retry = 0;
    if (rds_rate_limit(req_rds(rq), key, 60, max, app_now_ms(), &allowed, &retry)) {
        metrics_backend_error(METRICS_REDIS);
        return true;
    }
    if (allowed) return true;
    metrics_rate_limited(m);
    char ra[16];
    snprintf(ra, sizeof ra, "%lld", (long long)retry);
    char msg[120];
    snprintf(msg, sizeof msg, "too many %s requests: at most %d a minute, retry in %s s", kind,
             max, ra);
    *res = reply_error_ex(rq, 429, "RATE_LIMITED", json_pack("{s:s,s:I}", "limit", kind,
                                                             "retryAfter", (json_int_t)retry),
                          "Retry-After", ra, msg);
    return false;
}

static enum MHD_Result dispatch(req_t *rq)
{
    if (rq->_too_big)
        return reply_error(rq, 413, "PAYLOAD_TOO_LARGE", "request body larger than %d bytes",
                           rq->app->cfg->http.max_body_bytes);
    bool known;
    const char *param;
    const route_t *r = route_find(rq->method, rq->url, &known, &param);
    if (r) {
        rq->param = param;
        rq->_route_name = r->name;
        rq->_slot = route_slot(r);
        enum MHD_Result res;
        if (!limit_or_reply(rq, r->limit, &res)) return res;
        return r->fn(rq);
    }
    bool api = !strncmp(rq->url, "/api/", 5) || !strcmp(rq->url, "/api") ||
               !strncmp(rq->url, "/health", 7) || !strcmp(rq->url, "/metrics");
    if (known) {
        rq->_route_name = "method_not_allowed";
        rq->_slot = route_extra_slot(ROUTE_SLOT_NOT_ALLOWED);
        return reply_error(rq, 405, "METHOD_NOT_ALLOWED", "%s is not allowed on %s",
                           rq->method, rq->url);
    }
    if (api) {
        rq->_route_name = "not_found";
        rq->_slot = route_extra_slot(ROUTE_SLOT_NOT_FOUND);
        return reply_error(rq, 404, "NOT_FOUND", "no such endpoint: %s %s", rq->method, rq->url);
    }
    rq->_route_name = "static";
    rq->_slot = route_extra_slot(ROUTE_SLOT_STATIC);
    if (strcmp(rq->method, "GET") && strcmp(rq->method, "HEAD"))
        return reply_error(rq, 405, "METHOD_NOT_ALLOWED", "%s is not allowed on %s",
                           rq->method, rq->url);
    return h_static(rq);
}

static enum MHD_Result on_access(void *cls, struct MHD_Connection *conn, const char *url,
                                 const char *method, const char *version,
                                 const char *upload_data, size_t *upload_data_size,
                                 void **req_cls)
{
    (void)version;
    app_t *app = cls;
    req_t *rq = *req_cls;
    if (!rq) {
        rq = xcalloc(1, sizeof *rq);
        rq->app = app;
        rq->conn = conn;
        rq->method = method;
        rq->url = url;
        buf_init(&rq->body);
        unsigned char id[8];
        if (RAND_bytes(id, sizeof id) != 1) memset(id, 0, sizeof id);
        proto_hex(id, sizeof id, rq->rid);
        rq->_start_ms = app_mono_ms();
        rq->_start_us = app_mono_us();
        rq->_slot = -1;
        client_ip(rq);
        atomic_fetch_add(&app->inflight, 1);
        *req_cls = rq;
        const char *cl = req_header(rq, "Content-Length");
        if (cl && strtoull(cl, NULL, 10) > (unsigned long long)app->cfg->http.max_body_bytes) {
            rq->_too_big = true;
            return dispatch(rq); /* answer before reading the body */
        }
        return MHD_YES;
    }
    if (*upload_data_size) {
        size_t n = *upload_data_size;
        *upload_data_size = 0;
        if (rq->_replied) return MHD_YES;
        if (rq->_too_big || rq->body.len + n > (size_t)app->cfg->http.max_body_bytes) {
            rq->_too_big = true;
            buf_deinit(&rq->body);
            return MHD_YES;
        }
        buf_append(&rq->body, upload_data, n);
        return MHD_YES;
    }
    if (rq->_replied) return MHD_YES;
    return dispatch(rq);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **req_cls,
                         enum MHD_RequestTerminationCode toe)
{
    (void)conn;
    app_t *app = cls;
    req_t *rq = *req_cls;
    if (!rq) return;
    int64_t ms = app_mono_ms() - rq->_start_ms;
    if (!rq->_upgraded) metrics_http(rq->_slot, rq->_status, app_mono_us() - rq->_start_us);
    log_level_t lvl = rq->_status >= 500 ? LOG_WARN : rq->_status >= 400 ? LOG_INFO : LOG_DEBUG;
    if (log_enabled(lvl)) {
        char fields[256];
        snprintf(fields, sizeof fields,
                 "\"rid\":\"%s\",\"method\":\"%s\",\"route\":\"%s\",\"status\":%d,"
                 "\"ms\":%lld,\"ip\":\"%s\",\"completed\":%s",
                 rq->rid, rq->method, rq->_route_name ? rq->_route_name : "-", rq->_status,
                 (long long)ms, rq->ip,
                 toe == MHD_REQUEST_TERMINATED_COMPLETED_OK ? "true" : "false");
        log_fields(lvl, "http_request", fields, "%s", "");
    }
    buf_deinit(&rq->body);
    hub_client_free(rq->upgrade); /* the upgrade never happened */
    bool counted = !rq->_upgraded;
    free(rq);
    *req_cls = NULL;
    if (counted) atomic_fetch_sub(&app->inflight, 1);
}

void http_upgraded(req_t *rq)
{
    if (rq->_upgraded) return;
    rq->_upgraded = true;
    atomic_fetch_sub(&rq->app->inflight, 1);
}

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    (void)cls;
    char msg[512];
    vsnprintf(msg, sizeof msg, fmt, ap);
    size_t l = strlen(msg);
    while (l && msg[l - 1] == '\n') msg[--l] = '\0';
    log_msg(LOG_DEBUG, "mhd", "%s", msg);
}

/* ------------------------------------------------------------------ server */

http_server_t *http_start(app_t *app)
{
    route_name_slots(metrics_route_name);
    const cfg_t *cfg = app->cfg;
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)cfg->http.port);
    if (inet_pton(AF_INET, cfg->http.bind, &sa.sin_addr) != 1) {
        log_error("http_start", "[http] bind: '%s' is not an IPv4 address", cfg->http.bind);
        return NULL;
    }
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_USE_ITC |
                     MHD_USE_ERROR_LOG | MHD_ALLOW_UPGRADE;
    struct MHD_Daemon *d = MHD_start_daemon(
        flags, (uint16_t)cfg->http.port, NULL, NULL, on_access, app, MHD_OPTION_SOCK_ADDR, &sa,
        MHD_OPTION_THREAD_POOL_SIZE, (unsigned)cfg->http.threads,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)cfg->http.connection_timeout,
        MHD_OPTION_CONNECTION_LIMIT, (unsigned)cfg->http.max_connections,
        MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned)cfg->http.per_ip_connections,
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)32768, MHD_OPTION_LISTEN_BACKLOG_SIZE,
        (unsigned)1024, MHD_OPTION_LISTENING_ADDRESS_REUSE, (unsigned)1,
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, app, MHD_OPTION_EXTERNAL_LOGGER, mhd_log,
        NULL, MHD_OPTION_END);
    if (!d) {
        log_error("http_start", "cannot listen on %s:%d", cfg->http.bind, cfg->http.port);
        return NULL;
    }
    http_server_t *s = xcalloc(1, sizeof *s);
    s->app = app;
    s->d = d;
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
    s->port = di ? di->port : cfg->http.port;
    return s;
}

int http_port(const http_server_t *s) { return s->port; }

void http_quiesce(http_server_t *s)
{
    if (s->quiesced) return;
    s->quiesced = true;
    s->lfd = MHD_quiesce_daemon(s->d); /* stop accepting */
}

void http_stop_and_free(http_server_t *s)
{
    if (!s) return;
    http_quiesce(s);
    MHD_socket lfd = s->lfd;
    int64_t deadline = app_mono_ms() + s->app->cfg->http.shutdown_timeout_ms;
    while (atomic_load(&s->app->inflight) > 0 && app_mono_ms() < deadline) {
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    MHD_stop_daemon(s->d);
    if (lfd != MHD_INVALID_SOCKET) close(lfd);
    free(s);
}
