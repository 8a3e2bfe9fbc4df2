/* routes — the static route table and the route handlers (h_*.c). */
#ifndef PLACE_ROUTES_H
#define PLACE_ROUTES_H

#include <stdbool.h>

#include "http.h"

typedef struct route {
    const char *method;
    const char *path; /* exact, or a prefix when it ends with '/' and prefix is set */
    bool prefix;
    route_fn fn;
    const char *name; /* for logs and metrics */
} route_t;

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
enum MHD_Result h_health(req_t *rq);
enum MHD_Result h_health_ready(req_t *rq);
enum MHD_Result h_static(req_t *rq);
enum MHD_Result h_ws(req_t *rq);

#endif
