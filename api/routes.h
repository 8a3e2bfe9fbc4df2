/* routes — the static route table and the route handlers (h_*.c). */
#ifndef PLACE_ROUTES_H
#define PLACE_ROUTES_H

#include <stdbool.h>

#include "http.h"

/* Which rate limit a route counts against ([limits]); the default (0, an
 * omitted initialiser) is the per-user API limit. */
typedef enum {
    ROUTE_LIMIT_API = 0,
    ROUTE_LIMIT_NONE,
    ROUTE_LIMIT_AUTH,   /* per IP: register, login */
    ROUTE_LIMIT_GUEST,  /* per IP: new guest sessions */
    ROUTE_LIMIT_CANVAS, /* per IP: canvas downloads */
} route_limit_t;

typedef struct route {
    const char *method;
    const char *path; /* exact, or a prefix when it ends with '/' and prefix is set */
    bool prefix;
    route_fn fn;
    const char *name; /* for logs and metrics */
    route_limit_t limit;
} route_t;

/* metrics slots: one per table entry, then these three */
enum { ROUTE_SLOT_STATIC = 0, ROUTE_SLOT_NOT_FOUND, ROUTE_SLOT_NOT_ALLOWED };
int route_slot(const route_t *r);
int route_extra_slot(int which);
/* Calls fn for every slot with its name (static strings). */
void route_name_slots(void (*fn)(int slot, const char *name));

/* Finds the route for method+path. *path_known tells whether some route has
 * this path with another method (-> 405). NULL when none. */
const route_t *route_find(const char *method, const char *path, bool *path_known,
                          const char **param);
/* Comma-separated methods allowed on path (thread-local storage, valid until
 * the next call on this thread). */
const char *route_allow(const char *path);

enum MHD_Result h_auth_guest(req_t *rq);
enum MHD_Result h_auth_me(req_t *rq);
enum MHD_Result h_canvas(req_t *rq);
enum MHD_Result h_canvas_png(req_t *rq);
enum MHD_Result h_canvas_info(req_t *rq);
enum MHD_Result h_pixel(req_t *rq);
enum MHD_Result h_history_pixel(req_t *rq);
enum MHD_Result h_history_user(req_t *rq);
enum MHD_Result h_history_recent(req_t *rq);
enum MHD_Result h_snapshot_list(req_t *rq);    /* h_snapshots.c */
enum MHD_Result h_snapshot_png(req_t *rq);
enum MHD_Result h_admin_snapshot(req_t *rq);
enum MHD_Result h_timelapse_create(req_t *rq); /* h_timelapse.c */
enum MHD_Result h_timelapse_get(req_t *rq);
enum MHD_Result h_health(req_t *rq);
enum MHD_Result h_health_ready(req_t *rq);
enum MHD_Result h_static(req_t *rq);
enum MHD_Result h_ws(req_t *rq);
enum MHD_Result h_auth_register(req_t *rq);
enum MHD_Result h_auth_login(req_t *rq);
enum MHD_Result h_auth_logout(req_t *rq);
enum MHD_Result h_admin_reset(req_t *rq);
enum MHD_Result h_admin_ban(req_t *rq);
enum MHD_Result h_admin_unban(req_t *rq);
enum MHD_Result h_admin_settings(req_t *rq);
enum MHD_Result h_admin_stats(req_t *rq);
enum MHD_Result h_metrics(req_t *rq);

#endif
