/* place-api: the HTTP (and later WebSocket) server, event sink, migrations.
 *
 *   place-api [--config FILE]            serve
 *   place-api [--config FILE] migrate    apply sql/ migrations and exit
 *   place-api [--config FILE] print-config
 */
#include <errno.h>
#include <jansson.h>
#include <openssl/crypto.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>

#include "app.h"
#include "ccache.h"
#include "cfg.h"
#include "db.h"
#include "db_acct.h"
#include "db_migrate.h"
#include "http.h"
#include "hub.h"
#include "log.h"
#include "proto.h"
#include "pwhash.h"
#include "rds.h"
#include "rebuild.h"
#include "jobs.h"
#include "sink.h"

int64_t app_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t app_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t app_mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

json_t *app_palette_json(const app_t *app)
{
    json_t *pal = json_array();
    for (int i = 0; i < app->cfg->canvas.palette_len; i++) {
        char hex[8];
        snprintf(hex, sizeof hex, "#%06X", app->cfg->canvas.palette[i]);
        json_array_append_new(pal, json_string(hex));
    }
    return pal;
}

static void usage(void)
{
    fprintf(stderr, "usage: place-api [--config FILE] [serve|migrate|print-config]\n"
                    "       place-api [--config FILE] admin create NAME   (password on stdin)\n");
}

/* place-api admin create NAME: creates the account NAME as an admin, or
 * promotes it and sets its password, read from the first line of stdin.
 * Exit 0, 2 on bad input, 1 when PostgreSQL fails. */
static int cmd_admin_create(const cfg_t *cfg, const char *name)
{
    if (!proto_username_valid(name, strlen(name))) {
        fprintf(stderr, "place-api: username must be 3-32 letters, digits, '_' or '-'\n");
        return 2;
    }
    char pw[1100];
    if (!fgets(pw, sizeof pw, stdin)) pw[0] = '\0';
    size_t len = strcspn(pw, "\r\n");
    pw[len] = '\0';
    if (len < 8 || len > 1024) {
        fprintf(stderr, "place-api: the password (first line of stdin) must be 8 to 1024 bytes\n");
        return 2;
    }
    char hash[PWHASH_MAX], id[37];
    int rc = pwhash_hash(pw, len, PWHASH_LN, PWHASH_R, PWHASH_P, hash);
    OPENSSL_cleanse(pw, sizeof pw);
    if (rc) {
        fprintf(stderr, "place-api: password hashing failed\n");
        return 1;
    }
    db_t *db = db_new(cfg->postgres.url, cfg->postgres.timeout_ms);
    rc = db_user_make_admin(db, name, hash, id);
    if (rc) fprintf(stderr, "place-api: %s\n", db_errstr(db));
    else printf("%s is an admin (user id %s)\n", name, id);
    db_free(db);
    return rc ? 1 : 0;
}

static int cmd_migrate(const cfg_t *cfg)
{
    char err[512];
    int applied = 0;
    int rc = db_migrate(cfg->postgres.migrate_url, cfg->postgres.migrations_dir,
                        cfg->postgres.app_role, &applied, err, sizeof err);
    if (rc) {
        log_error("migrate_failed", "%s", err);
        return 1;
    }
    log_info("migrated", "%d migration(s) applied", applied);
    return 0;
}

/* Waits for a signal or ms; true when a stop signal arrived. */
static bool wait_signal(int sfd, int ms)
{
    fd_set rf;
    FD_ZERO(&rf);
    FD_SET(sfd, &rf);
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    if (select(sfd + 1, &rf, NULL, NULL, &tv) > 0) {
        struct signalfd_siginfo si;
        if (read(sfd, &si, sizeof si) == sizeof si) {
            log_info("signal", "received %s", strsignal((int)si.ssi_signo));
            return true;
        }
    }
    return false;
}

/* Settings live in PostgreSQL; Redis holds the copy the placement script
 * reads. A Redis that lost them gets them back (never overwriting). */
static void restore_settings(rds_t *rds, db_t *db)
{
    char v[64];
    if (db_setting_get(db, "cooldown_ms", v, sizeof v)) return;
    redisReply *r = rds_command(rds, "HSETNX %s cooldown_ms %s", RDS_KEY_SETTINGS, v);
    if (r && r->type == REDIS_REPLY_INTEGER && r->integer == 1)
        log_info("settings_restored", "cooldown_ms %s from PostgreSQL", v);
    if (r) freeReplyObject(r);
}

/* Makes sure Redis holds a canvas of the configured size: rebuilds it from
 * PostgreSQL (newest snapshot + later events + the stream) when it is
 * missing. Retries while a backend is down. Returns 0, 1 on a fatal
 * mismatch, 2 when a stop signal arrived. */
static int ensure_canvas(app_t *app, int sfd)
{
    const cfg_t *cfg = app->cfg;
    rds_t *rds = rds_new(cfg);
    db_t *db = db_new(cfg->postgres.url, cfg->postgres.timeout_ms);
    int result = 0;
    int backoff = 250;
    for (;;) {
        redisReply *r = rds_command(rds, "STRLEN %s", RDS_KEY_CANVAS);
        if (!r || r->type != REDIS_REPLY_INTEGER) {
            log_warn("startup_wait", "redis: %s", r ? "unexpected reply" : rds_errstr(rds));
            if (r) freeReplyObject(r);
            goto retry;
        }
        long long len = r->integer;
        freeReplyObject(r);
        if (len == (long long)canvas_size(&app->geom)) break;
        if (len != 0) {
            log_error("canvas_mismatch",
                      "Redis holds a %lld-byte canvas but [canvas] is %dx%d (%zu bytes); "
                      "fix the config or delete the key %s",
                      len, app->geom.width, app->geom.height, canvas_size(&app->geom),
                      RDS_KEY_CANVAS);
            result = 1;
            break;
        }
        uint8_t *c;
        rebuild_stats_t st;
        int rc = rebuild_canvas(db, rds, &app->geom, &c, &st);
        if (rc) {
            log_warn("startup_wait", "canvas rebuild: %s", db_errstr(db));
            goto retry;
        }
        bool installed = false;
        rc = rds_canvas_install(rds, c, canvas_size(&app->geom), st.seq, &installed);
        free(c);
        if (rc) goto retry;
        log_info("canvas_rebuilt",
                 "%s: snapshot seq %lld + %zu events from PostgreSQL + %zu from the stream, "
                 "seq %lld",
                 installed ? "installed" : "another instance installed first",
                 (long long)st.snapshot_seq, st.db_events, st.stream_events, (long long)st.seq);
        break;
    retry:
        if (wait_signal(sfd, backoff)) {
            result = 2;
            break;
        }
        backoff = backoff < 4000 ? backoff * 2 : 4000;
    }
    if (result == 0) restore_settings(rds, db);
    rds_free(rds);
    db_free(db);
    return result;
}

/* Every WebSocket is a file descriptor: lift the soft limit to the hard one. */
static void raise_fd_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
            log_warn("rlimit", "cannot raise the open-files limit: %s", strerror(errno));
    }
}

static int cmd_serve(const cfg_t *cfg)
{
    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGINT);
    pthread_sigmask(SIG_BLOCK, &mask, NULL); /* every thread inherits this */
    signal(SIGPIPE, SIG_IGN);
    int sfd = signalfd(-1, &mask, SFD_CLOEXEC);
    if (sfd < 0) {
        log_error("signalfd", "%s", strerror(errno));
        return 1;
    }

    app_t app;
    memset(&app, 0, sizeof app);
    app.cfg = cfg;
    app.geom.width = cfg->canvas.width;
    app.geom.height = cfg->canvas.height;
    app.geom.palette_len = cfg->canvas.palette_len;
    app.started_ms = app_now_ms();

    int rc = ensure_canvas(&app, sfd);
    if (rc) {
        close(sfd);
        return rc == 2 ? 0 : 1;
    }
    raise_fd_limit();
    app.ccache = ccache_new(&app);
    app.sink = sink_start(&app);
    app.hub = app.sink ? hub_start(&app) : NULL;
    http_server_t *http = app.hub ? http_start(&app) : NULL;
    if (!http) {
        hub_stop(app.hub);
        sink_stop(app.sink);
        ccache_free(app.ccache);
        close(sfd);
        return 1;
    }
    log_info("listening", "http://%s:%d/ (canvas %dx%d, %d colours, cooldown %d s)",
             cfg->http.bind, http_port(http), cfg->canvas.width, cfg->canvas.height,
             cfg->canvas.palette_len, cfg->cooldown.seconds);
    jobs_t *jobs = jobs_start(&app); /* outbox relay + periodic snapshots (api/jobs.h) */

    while (!wait_signal(sfd, 60000)) {
    }
    log_info("shutdown", "closing %lld WebSocket(s), draining %lld in-flight request(s)",
             (long long)app.ws_connections, (long long)app.inflight);
    http_quiesce(http); /* no new connections */
    hub_stop(app.hub);  /* close 1001 to every client, after their pending acks */
    http_stop_and_free(http);
    jobs_stop(jobs);
    sink_stop(app.sink);
    ccache_free(app.ccache);
    close(sfd);
    log_info("stopped", "bye");
    return 0;
}

int main(int argc, char **argv)
{
    const char *config = "config.ini";
    const char *cmd = "serve";
    const char *args[3] = {NULL, NULL, NULL};
    int nargs = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--config") && i + 1 < argc) {
            config = argv[++i];
        } else if (!strncmp(argv[i], "--config=", 9)) {
            config = argv[i] + 9;
        } else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            usage();
            return 0;
        } else if (argv[i][0] != '-') {
            if (nargs < 3) args[nargs] = argv[i];
            nargs++;
        } else {
            usage();
            return 2;
        }
    }
    if (nargs > 0) cmd = args[0];
    bool admin_cmd = !strcmp(cmd, "admin");
    if ((admin_cmd && (nargs != 3 || strcmp(args[1], "create") != 0)) || (!admin_cmd && nargs > 1)) {
        usage();
        return 2;
    }
    cfg_t *cfg = malloc(sizeof *cfg);
    char err[512];
    if (!cfg || cfg_load(cfg, config, NULL, err, sizeof err)) {
        fprintf(stderr, "place-api: config: %s\n", cfg ? err : "out of memory");
        free(cfg);
        return 2;
    }
    log_level_t lvl = LOG_INFO;
    (void)log_level_parse(cfg->log.level, &lvl);
    log_setup(lvl, cfg->instance);
    int rc;
    if (!strcmp(cmd, "serve")) rc = cmd_serve(cfg);
    else if (!strcmp(cmd, "migrate")) rc = cmd_migrate(cfg);
    else if (admin_cmd) rc = cmd_admin_create(cfg, args[2]);
    else if (!strcmp(cmd, "print-config")) {
        cfg_dump(cfg, stdout);
        rc = 0;
    } else {
        usage();
        rc = 2;
    }
    free(cfg);
    return rc;
}
