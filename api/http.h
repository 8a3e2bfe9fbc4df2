/* http — the MHD daemon, the access-handler dispatch, per-request context,
 * body caps, response helpers, and the per-pool-thread backends. */
#ifndef PLACE_HTTP_H
#define PLACE_HTTP_H

#include <jansson.h>
#include <microhttpd.h>
#include <stdbool.h>
#include <stdint.h>

#include "app.h"
#include "buf.h"
#include "db.h"
#include "px.h"
#include "rds.h"

typedef struct http_server http_server_t;
typedef struct req req_t;
struct hub_client;

typedef enum MHD_Result (*route_fn)(req_t *rq);

struct req {
    /* read-only for handlers */
    app_t *app;
    struct MHD_Connection *conn;
    const char *method;
    const char *url;
    const char *param; /* path remainder after a prefix route, e.g. the user id */
    buf_t body;
    char rid[17];      /* request id, hex */
    char ip[64];       /* client address (X-Forwarded-For from trusted proxies) */
    struct hub_client *upgrade; /* a WebSocket handed to the hub once upgraded (owned) */
    /* private */
    bool _too_big;
    bool _replied;
    bool _upgraded;
    int _status;
    int64_t _start_ms;
    int64_t _start_us;
    const char *_route_name;
    int _slot; /* metrics slot of the route */
    /* the session, loaded once per request */
    bool _sess_loaded;
    int _sess_rc;
    rds_session_t _sess;
    char _sid[65];
};

/* gives: http_server_free. Starts MHD listening per app->cfg. NULL on error
 * (logged: the edge). */
http_server_t *http_start(app_t *app);
/* The bound port (useful with port 0). */
int http_port(const http_server_t *s);
/* Stops accepting new connections (idempotent). */
void http_quiesce(http_server_t *s);
/* Called by the upgrade callback: the request is over for the drain count
 * (its connection now belongs to a hub). */
void http_upgraded(req_t *rq);
/* Stops accepting, waits for in-flight requests up to shutdown_timeout_ms,
 * then stops MHD and frees everything. */
void http_stop_and_free(http_server_t *s);

/* The calling pool thread's own backends, connected lazily. Never NULL. */
rds_t *req_rds(req_t *rq);
db_t *req_db(req_t *rq);

/* ---- responses: each queues exactly one response and returns MHD's result ---- */

/* takes: body (json_decref'd). */
enum MHD_Result reply_json(req_t *rq, unsigned status, json_t *body);
/* Like reply_json with one extra header (borrowed; hname NULL = none). */
enum MHD_Result reply_json_ex(req_t *rq, unsigned status, json_t *body, const char *hname,
                              const char *hvalue);
enum MHD_Result reply_error(req_t *rq, unsigned status, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Like reply_error with extra members (takes: extra, a JSON object merged
 * into the error object) and an optional extra header (borrowed, may be NULL). */
enum MHD_Result reply_error_ex(req_t *rq, unsigned status, const char *code, json_t *extra,
                               const char *hname, const char *hvalue, const char *msg);
/* Queues a prepared response (borrowed: the caller destroys its reference). */
enum MHD_Result reply_response(req_t *rq, unsigned status, struct MHD_Response *resp);

/* For stored objects that never change (a snapshot's PNG, a timelapse's
 * APNG): the ETag names the object, every answer may be cached a year. */
#define HTTP_IMMUTABLE_CACHE_CONTROL "public, max-age=31536000, immutable"
/* Queues 304 with no body and the caching headers. */
enum MHD_Result reply_not_modified(req_t *rq, const char *etag);
/* Queues 200 with body (takes: free()), len bytes of content_type
 * (borrowed), and the caching headers. */
enum MHD_Result reply_immutable(req_t *rq, const char *etag, const char *content_type,
                                uint8_t *body, size_t len);

/* ---- request helpers ---- */

/* True when If-None-Match is "*" or lists etag (borrowed, quoted, e.g.
 * "\"snapshot-12\"") as a whole entity-tag. */
bool req_etag_matches(req_t *rq, const char *etag);

/* Query argument or NULL (borrowed, valid during the request). */
const char *req_arg(req_t *rq, const char *name);
const char *req_header(req_t *rq, const char *name);
/* Parses an integer query argument in [lo, hi]; missing -> def. false after
 * replying 400. */
bool req_int_arg_or_reply(req_t *rq, const char *name, long lo, long hi, long def, long *out,
                          enum MHD_Result *res);
/* Loads the caller's session (cookie, then Authorization: Bearer). false
 * after replying 401 (no/unknown session) or 503 (Redis down). */
bool req_session_or_reply(req_t *rq, rds_session_t *out, char sid[65], enum MHD_Result *res);
/* Like req_session_or_reply, then requires the admin role: false after
 * replying 401 (no session) or 403 FORBIDDEN (not an admin). */
bool req_admin_or_reply(req_t *rq, rds_session_t *out, char sid[65], enum MHD_Result *res);
/* For state-changing admin requests: the header X-Place-CSRF: 1 (a cross-site
 * form cannot send it) and, when present, an allowed Origin ([ws]
 * allowed_origins). false after replying 403. */
bool req_csrf_or_reply(req_t *rq, enum MHD_Result *res);
/* Reads the session id from cookie or bearer without checking it. */
bool req_session_id(req_t *rq, char sid[65]);
/* The client's address group (proto_ip_group) for [cooldown] per_ip: true
 * with out set while the option is on and the address parses; otherwise
 * false with out "" (no inet_pton on the hot path while it is off). */
bool req_ip_group(req_t *rq, char out[PROTO_IP_GROUP_LEN]);

#endif
