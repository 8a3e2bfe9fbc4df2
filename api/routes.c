#include "routes.h"

#include <string.h>

static const route_t table[] = {
    {"POST", "/api/v1/auth/guest", false, h_auth_guest, "auth_guest", ROUTE_LIMIT_GUEST},
    {"POST", "/api/v1/auth/register", false, h_auth_register, "auth_register", ROUTE_LIMIT_AUTH},
    {"POST", "/api/v1/auth/login", false, h_auth_login, "auth_login", ROUTE_LIMIT_AUTH},
    {"POST", "/api/v1/auth/logout", false, h_auth_logout, "auth_logout", ROUTE_LIMIT_API},
    {"GET", "/api/v1/auth/me", false, h_auth_me, "auth_me", ROUTE_LIMIT_API},
    {"GET", "/api/v1/canvas", false, h_canvas, "canvas", ROUTE_LIMIT_CANVAS},
    {"GET", "/api/v1/canvas.png", false, h_canvas_png, "canvas_png", ROUTE_LIMIT_CANVAS},
    {"GET", "/api/v1/canvas/info", false, h_canvas_info, "canvas_info", ROUTE_LIMIT_API},
    {"POST", "/api/v1/pixel", false, h_pixel, "pixel", ROUTE_LIMIT_API},
    {"GET", "/api/v1/history/pixel", false, h_history_pixel, "history_pixel", ROUTE_LIMIT_API},
    {"GET", "/api/v1/history/user/", true, h_history_user, "history_user", ROUTE_LIMIT_API},
    {"GET", "/api/v1/history/recent", false, h_history_recent, "history_recent", ROUTE_LIMIT_API},
    /* exact timelapse routes before the prefix ones */
    {"GET", "/api/v1/timelapse/snapshots", false, h_snapshot_list, "timelapse_snapshots", ROUTE_LIMIT_API},
    {"GET", "/api/v1/timelapse/snapshot/", true, h_snapshot_png, "timelapse_snapshot", ROUTE_LIMIT_API},
    {"POST", "/api/v1/timelapse", false, h_timelapse_create, "timelapse_create", ROUTE_LIMIT_API},
    {"GET", "/api/v1/timelapse/", true, h_timelapse_get, "timelapse_get", ROUTE_LIMIT_API},
    {"POST", "/api/v1/admin/snapshot", false, h_admin_snapshot, "admin_snapshot", ROUTE_LIMIT_API},
    {"POST", "/api/v1/admin/reset-canvas", false, h_admin_reset, "admin_reset_canvas", ROUTE_LIMIT_API},
    {"POST", "/api/v1/admin/ban-user", false, h_admin_ban, "admin_ban_user", ROUTE_LIMIT_API},
    {"POST", "/api/v1/admin/unban-user", false, h_admin_unban, "admin_unban_user", ROUTE_LIMIT_API},
    {"PUT", "/api/v1/admin/settings", false, h_admin_settings, "admin_settings", ROUTE_LIMIT_API},
    {"GET", "/api/v1/admin/stats", false, h_admin_stats, "admin_stats", ROUTE_LIMIT_API},
    {"GET", "/api/v1/ws", false, h_ws, "ws", ROUTE_LIMIT_NONE},
    {"GET", "/health", false, h_health, "health", ROUTE_LIMIT_NONE},
    {"GET", "/health/ready", false, h_health_ready, "health_ready", ROUTE_LIMIT_NONE},
    {"GET", "/metrics", false, h_metrics, "metrics", ROUTE_LIMIT_NONE},
};

#define NROUTES (sizeof table / sizeof table[0])

static bool path_matches(const route_t *r, const char *path, const char **param)
{
    if (!r->prefix) return strcmp(r->path, path) == 0;
    size_t n = strlen(r->path);
    if (strncmp(r->path, path, n) != 0 || !path[n] || strchr(path + n, '/')) return false;
    *param = path + n;
    return true;
}

const route_t *route_find(const char *method, const char *path, bool *path_known,
                          const char **param)
{
    *path_known = false;
    *param = NULL;
    for (size_t i = 0; i < NROUTES; i++) {
        const char *p = NULL;
        if (!path_matches(&table[i], path, &p)) continue;
        *path_known = true;
        if (!strcmp(table[i].method, method) ||
            (!strcmp(method, "HEAD") && !strcmp(table[i].method, "GET"))) {
            *param = p;
            return &table[i];
        }
    }
    return NULL;
}

int route_slot(const route_t *r) { return (int)(r - table); }

void route_name_slots(void (*fn)(int slot, const char *name))
{
    for (size_t i = 0; i < NROUTES; i++) fn((int)i, table[i].name);
    fn((int)NROUTES + ROUTE_SLOT_STATIC, "static");
    fn((int)NROUTES + ROUTE_SLOT_NOT_FOUND, "not_found");
    fn((int)NROUTES + ROUTE_SLOT_NOT_ALLOWED, "method_not_allowed");
}

int route_extra_slot(int which) { return (int)NROUTES + which; }

const char *route_allow(const char *path)
{
    /* every method some route accepts on this path, GET implying HEAD */
    static const char *const methods[] = {"GET", "POST", "PUT", "DELETE", "PATCH"};
    static _Thread_local char out[48];
    out[0] = '\0';
    for (size_t m = 0; m < sizeof methods / sizeof methods[0]; m++) {
        for (size_t i = 0; i < NROUTES; i++) {
            const char *p;
            if (strcmp(table[i].method, methods[m]) || !path_matches(&table[i], path, &p))
                continue;
            if (out[0]) strcat(out, ", ");
            strcat(out, methods[m]);
            if (m == 0) strcat(out, ", HEAD");
            break;
        }
    }
    if (!out[0]) strcpy(out, "GET, HEAD");
    return out;
}
