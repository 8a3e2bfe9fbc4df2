/* cfg — config.ini + PLACE_<SECTION>_<KEY> environment overrides -> one
 * validated, immutable cfg_t. Nobody else reads the file or getenv(). */
#ifndef PLACE_CFG_H
#define PLACE_CFG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "px.h"

#define CFG_MAX_PALETTE 256
#define CFG_MAX_DIM 4096

typedef struct cfg {
    char instance[64];
    struct {
        char bind[64];
        int port;
        int threads;
        int max_body_bytes;
        int connection_timeout;
        int max_connections;
        int per_ip_connections;
        char static_dir[256];
        char trusted_proxies[512];
        int shutdown_timeout_ms;
    } http;
    struct {
        int threads;
        int tick_ms;
        int max_message_bytes;
        int max_connections;
        int max_buffered_bytes;
        int ping_interval_s;
        int dead_timeout_s;
        int messages_per_s;
        char allowed_origins[1024];
    } ws;
    struct {
        int width;
        int height;
        int palette_len;
        uint32_t palette[CFG_MAX_PALETTE]; /* 0xRRGGBB */
        int cache_ms;
    } canvas;
    struct {
        int seconds;
        int per_ip; /* placements per cooldown window from one address group, 0 = any */
    } cooldown;
    struct {
        int session_ttl_s;
        char cookie_name[64];
        bool cookie_secure;
    } auth;
    struct {
        int auth_per_min;
        int guest_per_min;
        int canvas_per_min;
        int api_per_min;
        int history_max;
    } limits;
    struct {
        char url[256];
        int timeout_ms;
        /* derived from url */
        char host[128];
        int port;
        int db;
        char password[128];
    } redis;
    struct {
        char url[512];
        char migrate_url[512];
        char app_role[64];
        char migrations_dir[256];
        int timeout_ms;
    } postgres;
    struct {
        char url[256];
        int prefetch;
    } rabbitmq;
    struct {
        int batch;
        int block_ms;
        int linger_ms;
        int claim_idle_ms;
        int flush_timeout_ms;
    } sink;
    struct {
        int snapshot_interval_s;
        int retention_days;
        int snapshot_retention_days;
        int max_timelapse_frames;
        int max_timelapse_pixels; /* cap on frames * width * height * scale^2 */
        int job_retention_days;   /* finished jobs and timelapse outputs */
        int retry_base_ms;        /* first retry delay of a failed job; doubles */
        int timelapses_per_hour;  /* per user; 0 = unlimited */
    } worker;
    struct {
        char level[8];
    } log;
} cfg_t;

/* Fills *out (out) from the defaults, then `path` (borrowed; NULL = defaults
 * only), then the environment (`envp`, borrowed, NULL-terminated "K=V"
 * strings; NULL = environ). Returns 0, or PX_ECONFIG with a message naming
 * section/key and the problem in err (out, errlen bytes). A missing file is an
 * error. Unknown keys are errors. */
PX_MUST_CHECK int cfg_load(cfg_t *out, const char *path, char *const *envp, char *err,
                           size_t errlen);

/* Writes every setting as "section.key = value" lines to fp (for --print-config). */
void cfg_dump(const cfg_t *cfg, void *fp);

#endif
