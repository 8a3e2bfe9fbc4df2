/* Static files of web/ at / (GET and HEAD only). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "routes.h"

static const char *mime_of(const char *path)
{
    static const struct {
        const char *ext, *type;
    } m[] = {{".html", "text/html; charset=utf-8"},
             {".js", "text/javascript; charset=utf-8"},
             {".css", "text/css; charset=utf-8"},
             {".json", "application/json"},
             {".png", "image/png"},
             {".svg", "image/svg+xml"},
             {".ico", "image/x-icon"},
             {".txt", "text/plain; charset=utf-8"}};
    const char *dot = strrchr(path, '.');
    if (dot)
        for (size_t i = 0; i < sizeof m / sizeof m[0]; i++)
            if (!strcmp(dot, m[i].ext)) return m[i].type;
    return "application/octet-stream";
}

/* Only [A-Za-z0-9._-/] and no "..": anything else is not a file of ours. */
static bool safe_path(const char *p)
{
    if (strstr(p, "..") || strstr(p, "//")) return false;
    for (; *p; p++) {
        char c = *p;
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-' || c == '/'))
            return false;
    }
    return true;
}

enum MHD_Result h_static(req_t *rq)
{
    const char *url = rq->url;
    if (!safe_path(url)) return reply_error(rq, 404, "NOT_FOUND", "no such file");
    char path[512];
    int n = snprintf(path, sizeof path, "%s%s%s", rq->app->cfg->http.static_dir, url,
                     url[strlen(url) - 1] == '/' ? "index.html" : "");
    if (n < 0 || (size_t)n >= sizeof path) return reply_error(rq, 404, "NOT_FOUND", "no such file");
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        if (fd >= 0) close(fd);
        return reply_error(rq, 404, "NOT_FOUND", "no such file: %s", url);
    }
    struct MHD_Response *r = MHD_create_response_from_fd((uint64_t)st.st_size, fd);
    if (!r) {
        close(fd);
        return reply_error(rq, 500, "INTERNAL", "cannot serve file");
    }
    MHD_add_response_header(r, "Content-Type", mime_of(path));
    MHD_add_response_header(r, "Cache-Control", "no-cache");
    MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
    enum MHD_Result res = reply_response(rq, 200, r);
    MHD_destroy_response(r);
    return res;
}
