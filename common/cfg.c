#include "cfg.h"

#include <errno.h>
#include <ini.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "log.h"
#include "xalloc.h"

extern char **environ;

/* ------------------------------------------------------------------ table */

typedef enum { T_INT, T_STR, T_BOOL, T_PALETTE } kind_t;

typedef struct {
    const char *section;
    const char *key;
    kind_t kind;
    size_t off;
    size_t size; /* T_STR: capacity */
    long min, max;
    const char *def;
} opt_t;

#define OI(sec, k, field, lo, hi, d) {sec, k, T_INT, offsetof(cfg_t, field), 0, lo, hi, d}
#define OS(sec, k, field, d) {sec, k, T_STR, offsetof(cfg_t, field), sizeof(((cfg_t *)0)->field), 0, 0, d}
#define OB(sec, k, field, d) {sec, k, T_BOOL, offsetof(cfg_t, field), 0, 0, 1, d}

static const opt_t opts[] = {
    OS("instance", "name", instance, ""),
    OS("http", "bind", http.bind, "127.0.0.1"),
    OI("http", "port", http.port, 0, 65535, "3001"),
    OI("http", "threads", http.threads, 1, 256, "4"),
    OI("http", "max_body_bytes", http.max_body_bytes, 64, 64 << 20, "16384"),
    OI("http", "connection_timeout", http.connection_timeout, 1, 3600, "30"),
    OI("http", "max_connections", http.max_connections, 1, 1000000, "20000"),
    OI("http", "per_ip_connections", http.per_ip_connections, 1, 1000000, "2000"),
    OS("http", "static_dir", http.static_dir, "web"),
    OS("http", "trusted_proxies", http.trusted_proxies, "127.0.0.1"),
    OI("http", "shutdown_timeout_ms", http.shutdown_timeout_ms, 0, 600000, "10000"),
    OI("ws", "threads", ws.threads, 0, 64, "0"),
    OI("ws", "tick_ms", ws.tick_ms, 1, 1000, "10"),
    OI("ws", "max_message_bytes", ws.max_message_bytes, 64, 1 << 20, "4096"),
    OI("ws", "max_connections", ws.max_connections, 1, 1000000, "20000"),
    OI("ws", "max_buffered_bytes", ws.max_buffered_bytes, 1024, 1 << 30, "1048576"),
    OI("ws", "ping_interval_s", ws.ping_interval_s, 1, 3600, "30"),
    OI("ws", "dead_timeout_s", ws.dead_timeout_s, 1, 3600, "10"),
    OI("ws", "messages_per_s", ws.messages_per_s, 1, 100000, "20"),
    OS("ws", "allowed_origins", ws.allowed_origins, "http://localhost:3001,http://127.0.0.1:3001"),
    OI("canvas", "width", canvas.width, 1, CFG_MAX_DIM, "500"),
    OI("canvas", "height", canvas.height, 1, CFG_MAX_DIM, "500"),
    {"canvas", "palette", T_PALETTE, 0, 0, 0, 0,
     "FFFFFF,E4E4E4,888888,222222,FFA7D1,E50000,E59500,A06A42,"
     "E5D900,94E044,02BE01,00D3DD,0083C7,0000EA,CF6EE4,820080"},
    OI("canvas", "cache_ms", canvas.cache_ms, 0, 60000, "250"),
    OI("cooldown", "seconds", cooldown.seconds, 0, 86400, "5"),
    OI("cooldown", "per_ip", cooldown.per_ip, 0, 1000000, "0"),
    OI("auth", "session_ttl_s", auth.session_ttl_s, 60, 30 * 86400, "86400"),
    OS("auth", "cookie_name", auth.cookie_name, "place_session"),
    OB("auth", "cookie_secure", auth.cookie_secure, "false"),
    OI("limits", "auth_per_min", limits.auth_per_min, 0, 1000000, "5"),
    OI("limits", "guest_per_min", limits.guest_per_min, 0, 1000000, "60"),
    OI("limits", "canvas_per_min", limits.canvas_per_min, 0, 1000000, "10"),
    OI("limits", "api_per_min", limits.api_per_min, 0, 1000000, "100"),
    OI("limits", "history_max", limits.history_max, 1, 100000, "1000"),
    OS("redis", "url", redis.url, "redis://127.0.0.1:16379/0"),
    OI("redis", "timeout_ms", redis.timeout_ms, 10, 600000, "1000"),
    OS("postgres", "url", postgres.url, "postgresql://place@127.0.0.1:15432/place"),
    OS("postgres", "migrate_url", postgres.migrate_url,
       "postgresql://place_owner@127.0.0.1:15432/place"),
    OS("postgres", "app_role", postgres.app_role, "place"),
    OS("postgres", "migrations_dir", postgres.migrations_dir, "sql"),
    OI("postgres", "timeout_ms", postgres.timeout_ms, 10, 600000, "5000"),
    OS("rabbitmq", "url", rabbitmq.url, "amqp://guest:guest@127.0.0.1:15672/"),
    OI("rabbitmq", "prefetch", rabbitmq.prefetch, 1, 65535, "1"),
    OI("sink", "batch", sink.batch, 1, 100000, "2000"),
    OI("sink", "block_ms", sink.block_ms, 1, 60000, "200"),
    OI("sink", "linger_ms", sink.linger_ms, 0, 1000, "50"),
    OI("sink", "claim_idle_ms", sink.claim_idle_ms, 100, 86400000, "30000"),
    OI("sink", "flush_timeout_ms", sink.flush_timeout_ms, 0, 600000, "5000"),
    OI("worker", "snapshot_interval_s", worker.snapshot_interval_s, 0, 86400 * 30, "0"),
    OI("worker", "retention_days", worker.retention_days, 1, 36500, "30"),
    OI("worker", "snapshot_retention_days", worker.snapshot_retention_days, 1, 36500, "90"),
    OI("worker", "max_timelapse_frames", worker.max_timelapse_frames, 1, 100000, "600"),
    OI("worker", "max_timelapse_pixels", worker.max_timelapse_pixels, 1, 2000000000, "250000000"),
    OI("worker", "job_retention_days", worker.job_retention_days, 1, 36500, "30"),
    OI("worker", "retry_base_ms", worker.retry_base_ms, 1, 60000, "1000"),
    OI("worker", "timelapses_per_hour", worker.timelapses_per_hour, 0, 1000000, "20"),
    OS("log", "level", log.level, "info"),
};

#define NOPTS (sizeof opts / sizeof opts[0])

/* ------------------------------------------------------------------ values */

static int set_int(cfg_t *c, const opt_t *o, const char *v, char *err, size_t errlen)
{
    char *end;
    errno = 0;
    while (*v == ' ') v++;
    long n = strtol(v, &end, 10);
    while (*end == ' ') end++;
    if (errno || end == v || *end) {
        snprintf(err, errlen, "[%s] %s: '%s' is not an integer", o->section, o->key, v);
        return PX_ECONFIG;
    }
    if (n < o->min || n > o->max) {
        snprintf(err, errlen, "[%s] %s: %ld is out of range %ld..%ld", o->section, o->key, n,
                 o->min, o->max);
        return PX_ECONFIG;
    }
    int iv = (int)n; /* memcpy: a field found by offset, without an aligning cast */
    memcpy((char *)c + o->off, &iv, sizeof iv);
    return 0;
}

static int set_palette(cfg_t *c, const opt_t *o, const char *v, char *err, size_t errlen)
{
    int n = 0;
    const char *p = v;
    while (*p) {
        while (*p == ' ' || *p == ',' || *p == '#') p++;
        if (!*p) break;
        const char *s = p;
        while (*p && *p != ',' && *p != ' ') p++;
        size_t len = (size_t)(p - s);
        if (*s == '#') s++, len--;
        char hex[8] = {0};
        bool ok = len == 6;
        for (size_t i = 0; ok && i < 6; i++) {
            hex[i] = s[i];
            ok = (s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f') ||
                 (s[i] >= 'A' && s[i] <= 'F');
        }
        if (!ok) {
            snprintf(err, errlen, "[%s] %s: colour %d ('%.*s') is not RRGGBB", o->section,
                     o->key, n, (int)(len > 16 ? 16 : len), s);
            return PX_ECONFIG;
        }
        if (n == CFG_MAX_PALETTE) {
            snprintf(err, errlen, "[%s] %s: more than %d colours", o->section, o->key,
                     CFG_MAX_PALETTE);
            return PX_ECONFIG;
        }
        c->canvas.palette[n++] = (uint32_t)strtoul(hex, NULL, 16);
    }
    if (n < 2) {
        snprintf(err, errlen, "[%s] %s: needs at least 2 colours", o->section, o->key);
        return PX_ECONFIG;
    }
    c->canvas.palette_len = n;
    return 0;
}

static int set_value(cfg_t *c, const opt_t *o, const char *v, char *err, size_t errlen)
{
    switch (o->kind) {
    case T_INT: return set_int(c, o, v, err, errlen);
    case T_STR: {
        size_t len = strlen(v);
        if (len >= o->size) {
            snprintf(err, errlen, "[%s] %s: value longer than %zu characters", o->section,
                     o->key, o->size - 1);
            return PX_ECONFIG;
        }
        memcpy((char *)c + o->off, v, len + 1);
        return 0;
    }
    case T_BOOL: {
        bool b;
        if (!strcasecmp(v, "true") || !strcasecmp(v, "yes") || !strcmp(v, "1") ||
            !strcasecmp(v, "on"))
            b = true;
        else if (!strcasecmp(v, "false") || !strcasecmp(v, "no") || !strcmp(v, "0") ||
                 !strcasecmp(v, "off"))
            b = false;
        else {
            snprintf(err, errlen, "[%s] %s: '%s' is not a boolean (true/false)", o->section,
                     o->key, v);
            return PX_ECONFIG;
        }
        *(bool *)((char *)c + o->off) = b;
        return 0;
    }
    case T_PALETTE: return set_palette(c, o, v, err, errlen);
    }
    return PX_ECONFIG;
}

static const opt_t *find_opt(const char *section, const char *key)
{
    for (size_t i = 0; i < NOPTS; i++)
        if (!strcasecmp(opts[i].section, section) && !strcasecmp(opts[i].key, key))
            return &opts[i];
    return NULL;
}

/* ------------------------------------------------------------------ ini */

typedef struct {
    cfg_t *cfg;
    char *err;
    size_t errlen;
    int rc;
    const opt_t *last; /* option of the previous line, for continuations */
    char acc[4096];    /* its value so far */
} parse_ctx_t;

/* Lists (palette, proxies, origins) may continue on indented lines: inih
 * calls us again with the same key, and the pieces are joined with ','. */
static bool is_list(const opt_t *o)
{
    return o->kind == T_PALETTE || !strcmp(o->key, "trusted_proxies") ||
           !strcmp(o->key, "allowed_origins");
}

static int on_ini(void *user, const char *section, const char *name, const char *value)
{
    parse_ctx_t *pc = user;
    if (pc->rc) return 0;
    const opt_t *o = find_opt(section, name);
    if (!o) {
        snprintf(pc->err, pc->errlen, "[%s] %s: unknown setting", section, name);
        pc->rc = PX_ECONFIG;
        return 0;
    }
    if (o == pc->last && is_list(o)) {
        size_t l = strlen(pc->acc);
        snprintf(pc->acc + l, sizeof pc->acc - l, ",%s", value);
    } else {
        snprintf(pc->acc, sizeof pc->acc, "%s", value);
    }
    pc->last = o;
    pc->rc = set_value(pc->cfg, o, pc->acc, pc->err, pc->errlen);
    return pc->rc ? 0 : 1;
}

/* ------------------------------------------------------------------ derived */

static int parse_redis_url(cfg_t *c, char *err, size_t errlen)
{
    const char *u = c->redis.url;
    c->redis.port = 6379;
    c->redis.db = 0;
    c->redis.password[0] = '\0';
    if (strncmp(u, "redis://", 8) != 0) {
        snprintf(err, errlen, "[redis] url: '%s' must start with redis://", u);
        return PX_ECONFIG;
    }
    u += 8;
    const char *at = strchr(u, '@');
    if (at) {
        const char *colon = memchr(u, ':', (size_t)(at - u));
        const char *pw = colon ? colon + 1 : u;
        size_t n = (size_t)(at - pw);
        if (n >= sizeof c->redis.password) n = sizeof c->redis.password - 1;
        memcpy(c->redis.password, pw, n);
        c->redis.password[n] = '\0';
        u = at + 1;
    }
    size_t hl = strcspn(u, ":/");
    if (hl == 0 || hl >= sizeof c->redis.host) {
        snprintf(err, errlen, "[redis] url: missing or too long host");
        return PX_ECONFIG;
    }
    memcpy(c->redis.host, u, hl);
    c->redis.host[hl] = '\0';
    u += hl;
    if (*u == ':') {
        char *end;
        long p = strtol(u + 1, &end, 10);
        if (end == u + 1 || p < 1 || p > 65535 || (*end && *end != '/')) {
            snprintf(err, errlen, "[redis] url: bad port");
            return PX_ECONFIG;
        }
        c->redis.port = (int)p;
        u = end;
    }
    if (*u == '/' && u[1]) {
        char *end;
        long d = strtol(u + 1, &end, 10);
        if (end == u + 1 || *end || d < 0 || d > 1000) {
            snprintf(err, errlen, "[redis] url: bad database number");
            return PX_ECONFIG;
        }
        c->redis.db = (int)d;
    }
    return 0;
}

static int finish(cfg_t *c, char *err, size_t errlen)
{
    int rc = parse_redis_url(c, err, errlen);
    if (rc) return rc;
    if (!log_level_parse(c->log.level, &(log_level_t){0})) {
        snprintf(err, errlen, "[log] level: '%s' is not one of debug, info, warn, error",
                 c->log.level);
        return PX_ECONFIG;
    }
    if (strncmp(c->postgres.url, "postgres", 8) != 0) {
        snprintf(err, errlen, "[postgres] url: must be a postgresql:// URL");
        return PX_ECONFIG;
    }
    if (strncmp(c->postgres.migrate_url, "postgres", 8) != 0) {
        snprintf(err, errlen, "[postgres] migrate_url: must be a postgresql:// URL");
        return PX_ECONFIG;
    }
    if (strncmp(c->rabbitmq.url, "amqp://", 7) != 0) {
        snprintf(err, errlen, "[rabbitmq] url: '%s' must start with amqp://", c->rabbitmq.url);
        return PX_ECONFIG;
    }
    for (const char *p = c->postgres.app_role; *p; p++) {
        if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '_')) {
            snprintf(err, errlen, "[postgres] app_role: only a-z, 0-9 and _ allowed");
            return PX_ECONFIG;
        }
    }
    if (!c->instance[0]) {
        char host[48] = "localhost";
        gethostname(host, sizeof host - 1);
        host[sizeof host - 1] = '\0';
        snprintf(c->instance, sizeof c->instance, "%s:%d", host, c->http.port);
    }
    return 0;
}

/* ------------------------------------------------------------------ api */

int cfg_load(cfg_t *out, const char *path, char *const *envp, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    err[0] = '\0';
    for (size_t i = 0; i < NOPTS; i++) {
        int rc = set_value(out, &opts[i], opts[i].def, err, errlen);
        if (rc) return rc;
    }
    if (path) {
        FILE *fp = fopen(path, "r");
        if (!fp) {
            snprintf(err, errlen, "cannot open config file %s: %s", path, strerror(errno));
            return PX_ECONFIG;
        }
        /* Debian's libinih reads at most 199 bytes a line and would split a
         * longer one silently: refuse it with a clear message instead. */
        int ch, col = 0, lineno = 1;
        while ((ch = getc(fp)) != EOF) {
            if (ch == '\n') {
                lineno++;
                col = 0;
            } else if (++col > 199) {
                fclose(fp);
                snprintf(err, errlen,
                         "%s:%d: line longer than 199 characters; continue long lists "
                         "(palette, origins, proxies) on indented lines",
                         path, lineno);
                return PX_ECONFIG;
            }
        }
        rewind(fp);
        parse_ctx_t *pc = xcalloc(1, sizeof *pc);
        pc->cfg = out;
        pc->err = err;
        pc->errlen = errlen;
        int line = ini_parse_file(fp, on_ini, pc);
        fclose(fp);
        int prc = pc->rc;
        free(pc);
        if (prc) return prc;
        if (line != 0) {
            snprintf(err, errlen, "%s:%d: syntax error", path, line);
            return PX_ECONFIG;
        }
    }
    if (!envp) envp = environ;
    for (char *const *e = envp; *e; e++) {
        if (strncmp(*e, "PLACE_", 6) != 0) continue;
        const char *eq = strchr(*e, '=');
        if (!eq) continue;
        const opt_t *o = NULL;
        for (size_t i = 0; i < NOPTS && !o; i++) {
            char name[96];
            int n = snprintf(name, sizeof name, "PLACE_%s_%s", opts[i].section, opts[i].key);
            if (n < 0 || (size_t)n != (size_t)(eq - *e)) continue;
            if (!strncasecmp(name, *e, (size_t)n)) o = &opts[i];
        }
        if (!o) continue; /* PLACE_* variables of other tools are not ours to judge */
        int rc = set_value(out, o, eq + 1, err, errlen);
        if (rc) {
            size_t l = strlen(err);
            snprintf(err + l, errlen - l, " (from environment %.*s)", (int)(eq - *e), *e);
            return rc;
        }
    }
    return finish(out, err, errlen);
}

void cfg_dump(const cfg_t *c, void *fpv)
{
    FILE *fp = fpv;
    for (size_t i = 0; i < NOPTS; i++) {
        const opt_t *o = &opts[i];
        fprintf(fp, "%s.%s = ", o->section, o->key);
        switch (o->kind) {
        case T_INT: {
            int v;
            memcpy(&v, (const char *)c + o->off, sizeof v);
            fprintf(fp, "%d\n", v);
            break;
        }
        case T_STR: fprintf(fp, "%s\n", (const char *)c + o->off); break;
        case T_BOOL:
            fprintf(fp, "%s\n", *(const bool *)((const char *)c + o->off) ? "true" : "false");
            break;
        case T_PALETTE:
            for (int j = 0; j < c->canvas.palette_len; j++)
                fprintf(fp, "%s%06X", j ? "," : "", c->canvas.palette[j]);
            fputc('\n', fp);
            break;
        }
    }
}
