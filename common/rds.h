/* rds — synchronous hiredis wrapper, one rds_t per thread (never shared).
 * Connects lazily and reconnects after an I/O error on the next call. Keeps a
 * sticky error string (rds_errstr); never logs. The placement Lua script and
 * the Redis key layout live here.
 *
 * Keys: canvas:main (bytes), canvas:seq, canvas:events (stream, group
 * "sink"), cooldown:user:<uid>, banned:users (set), settings (hash),
 * session:<sid> (hash). Channel canvas:updates. */
#ifndef PLACE_RDS_H
#define PLACE_RDS_H

#include <hiredis/hiredis.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cfg.h"
#include "proto.h"
#include "px.h"

#define RDS_KEY_CANVAS "canvas:main"
#define RDS_KEY_SEQ "canvas:seq"
#define RDS_KEY_EVENTS "canvas:events"
#define RDS_KEY_BANNED "banned:users"
#define RDS_KEY_SETTINGS "settings"
#define RDS_CHANNEL "canvas:updates"
#define RDS_GROUP "sink"
#define RDS_KEY_DEAD "canvas:events:dead"
#define RDS_KEY_RESET_SEQ "canvas:reset_seq" /* seq of the last admin reset */
#define RDS_KEY_INSTANCES "place:instances"  /* name -> "<ws conns> <ms> <placements/s>" */

typedef struct rds rds_t;

/* gives: rds_free. cfg borrowed, must outlive the rds_t. Does not connect. */
rds_t *rds_new(const cfg_t *cfg);
void rds_free(rds_t *r);
const char *rds_errstr(const rds_t *r);

/* Connects if not connected. 0 or PX_EBACKEND. */
PX_MUST_CHECK int rds_ensure(rds_t *r);

/* Runs one command (hiredis format). gives: the reply (freeReplyObject), or
 * NULL after an I/O / protocol error (errstr set, connection dropped). A
 * Redis error reply is returned as a reply of type REDIS_REPLY_ERROR. */
redisReply *rds_command(rds_t *r, const char *fmt, ...);
redisReply *rds_commandargv(rds_t *r, int argc, const char **argv, const size_t *lens);
/* Appends without reading (pipelining); follow with rds_get_reply per command. */
PX_MUST_CHECK int rds_append(rds_t *r, const char *fmt, ...);
redisReply *rds_get_reply(rds_t *r);

/* ---- placement ---- */

typedef struct rds_place_req {
    const char *user_id; /* uuid text, borrowed */
    const char *id;      /* 32 hex digits, borrowed */
    int x, y, color;
    int width, height;    /* canvas geometry */
    int64_t cooldown_ms;  /* default when settings has no cooldown_ms */
    const char *ip_group; /* proto_ip_group of the client, borrowed; NULL or "": no limit */
    int ip_cap;           /* placements per cooldown window from ip_group; 0: no limit */
} rds_place_req_t;

typedef struct rds_place_res {
    int64_t seq;         /* on success */
    int64_t time_ms;     /* Redis TIME of the placement */
    int64_t cooldown_ms; /* cooldown that now applies (success) */
    int64_t remaining_ms; /* PX_ECOOLDOWN: time left */
    bool ip_limited;      /* PX_ECOOLDOWN: the address group's, not the user's */
} rds_place_res_t;

/* The message of a PX_ECOOLDOWN refusal: the user's cooldown, or the
 * address group's allowance ([cooldown] per_ip). */
void rds_cooldown_message(const rds_place_res_t *res, char *msg, size_t n);

/* Runs the placement script (EVALSHA, EVAL on NOSCRIPT). Returns 0,
 * PX_ECOOLDOWN (remaining_ms set), PX_EBANNED, PX_ENOCANVAS (no canvas of
 * the right size in Redis) or PX_EBACKEND. */
PX_MUST_CHECK int rds_place(rds_t *r, const rds_place_req_t *req, rds_place_res_t *res);

/* Writes argv as one RESP command (what hiredis's redisFormatCommandArgv
 * makes) at out, without printf or allocation, and a NUL after it (hiredis
 * scans a formatted command with strchr for its name). Returns its length
 * (the NUL not counted), or 0 when it and the NUL might not fit in cap bytes
 * (counting 20 digits for each length) or lens is NULL. */
size_t rds_format_command(char *out, size_t cap, int argc, const char *const *argv,
                          const size_t *lens);

/* A new placement id: 32 hex digits of 16 random bytes. Drawn from OpenSSL
 * 4 kB at a time per thread: a RAND_bytes call per placement cost a fork
 * check (getpid) and a DRBG call each, a few per cent of a hub's CPU at
 * 35,000 placements/s. The pool is not reset on fork: a process that forks
 * must not draw ids on both sides (the api never forks). Returns 0, or -1
 * when the random source failed. */
PX_MUST_CHECK int rds_placement_id(char id[33]);

/* The script's argument vector for one placement, for async callers (the
 * sync rds_place uses it too). Self-contained: argv points into the struct,
 * so it must not be copied after rds_place_args. */
#define RDS_PLACE_ARGC 20
typedef struct rds_place_args {
    const char *argv[RDS_PLACE_ARGC];
    size_t lens[RDS_PLACE_ARGC];
    char off[24], cd[24], xs[12], ys[12], cs[12], size[24], cdkey[64], uid[40], id[36];
    char ipkey[16 + PROTO_IP_GROUP_LEN], ipcap[12];
    unsigned char byte;
} rds_place_args_t;
void rds_place_args(const rds_place_req_t *req, rds_place_args_t *a);
/* Switches a to EVAL with the script text (after a NOSCRIPT reply). */
void rds_place_args_eval(rds_place_args_t *a);
bool rds_reply_noscript(const redisReply *rep);
/* Interprets the script's reply (borrowed; NULL = connection lost): same
 * return codes as rds_place; err gets a message on PX_EBACKEND/PX_ENOCANVAS. */
PX_MUST_CHECK int rds_place_result(const redisReply *rep, rds_place_res_t *res, char *err,
                                   size_t errlen);

/* The script text and its SHA-1 hex (static storage), for async callers. */
const char *rds_place_script(void);
const char *rds_place_sha(void);

/* Reads canvas and seq in one MULTI. gives: *data (free()). PX_ENOCANVAS when
 * the key is missing, else 0 / PX_EBACKEND. */
PX_MUST_CHECK int rds_canvas_get(rds_t *r, uint8_t **data, size_t *len, int64_t *seq);

/* Sets the canvas only if no canvas exists (SET NX), and raises canvas:seq to
 * at least `seq`, atomically. *installed tells whether ours won. */
PX_MUST_CHECK int rds_canvas_install(rds_t *r, const uint8_t *data, size_t len, int64_t seq,
                                     bool *installed);

/* Raises canvas:seq to at least floor (never lowers it). *seq = value after. */
PX_MUST_CHECK int rds_seq_floor(rds_t *r, int64_t floor, int64_t *seq);

PX_MUST_CHECK int rds_ping(rds_t *r);

/* ---- sessions ---- */

typedef struct rds_session {
    char user_id[37];
    char name[64];
    bool guest;
    bool admin;
} rds_session_t;

/* Stores session:<sid> with the given TTL. */
PX_MUST_CHECK int rds_session_put(rds_t *r, const char *sid, const rds_session_t *s,
                                  int ttl_s);
/* Deletes session:<sid> (and its entry in the user's index when user_id is
 * given, borrowed, may be NULL). */
PX_MUST_CHECK int rds_session_delete(rds_t *r, const char *sid, const char *user_id);
/* Deletes every session of user_id (ban). *revoked (may be NULL) = how many. */
PX_MUST_CHECK int rds_user_sessions_revoke(rds_t *r, const char *user_id, int64_t *revoked);
/* A 16-hex-digit tag naming a session without revealing it (SHA-256 prefix),
 * used to close one session's WebSockets on logout. */
void rds_session_tag(const char *sid, char out[17]);
/* PUBLISH canvas:updates "c <json>": a control message every instance's hub
 * receives in order with the updates (settings, reset, resync, ban,
 * logout). json borrowed. */
PX_MUST_CHECK int rds_publish_control(rds_t *r, const char *json);
/* Loads session:<sid> and slides its TTL to ttl_s. PX_ENOTFOUND when absent. */
PX_MUST_CHECK int rds_session_get(rds_t *r, const char *sid, int ttl_s, rds_session_t *out);
/* Remaining cooldown of a user in ms (0 when none). */
PX_MUST_CHECK int rds_cooldown_remaining(rds_t *r, const char *user_id, int64_t *ms);
/* Sliding-window limit (ratelimit.h) of max hits per window_s seconds for
 * name (borrowed, e.g. "auth:10.0.0.1"): counts the hit at now_ms in
 * rate:<name>:<bucket> and sets *allowed; when refused the hit is taken
 * back and *retry_s says how long to wait. PX_EBACKEND when Redis failed
 * (*allowed stays true). */
PX_MUST_CHECK int rds_rate_limit(rds_t *r, const char *name, int window_s, int max, int64_t now_ms,
                                 bool *allowed, int64_t *retry_s);

/* ---- admin ---- */

/* SADD / SREM banned:users (the placement script refuses members). */
PX_MUST_CHECK int rds_ban(rds_t *r, const char *user_id, bool ban);
/* settings.cooldown_ms = ms (the script reads it on every placement). */
PX_MUST_CHECK int rds_cooldown_set(rds_t *r, int64_t ms);
/* Atomically blanks the canvas (all index 0), takes a new seq, records it
 * as canvas:reset_seq and publishes the reset notice. gives: *old (free(),
 * size bytes: the canvas before) with *old_seq; *new_seq. PX_ENOCANVAS
 * when Redis holds no canvas of that size. */
PX_MUST_CHECK int rds_canvas_reset(rds_t *r, size_t size, uint8_t **old, int64_t *old_seq,
                                   int64_t *new_seq);
/* canvas:reset_seq (0 when the canvas was never reset). */
PX_MUST_CHECK int rds_reset_seq(rds_t *r, int64_t *seq);

typedef struct rds_restore {
    int x, y, cur, to;
    char id[33]; /* a fresh placement id (32 hex) */
} rds_restore_t;
/* Restores each pixel still showing `cur` to `to`, as placements by
 * admin_id (logged, broadcast). *restored = how many changed. */
PX_MUST_CHECK int rds_restore(rds_t *r, const char *admin_id, int width, const rds_restore_t *px,
                              size_t n, int64_t *restored);

/* Redis TIME in ms: the one clock every instance shares. */
PX_MUST_CHECK int rds_time_ms(rds_t *r, int64_t *ms);
/* canvas:seq (0 when unset). */
PX_MUST_CHECK int rds_seq_get(rds_t *r, int64_t *seq);
/* The cooldown in force: settings.cooldown_ms, or def_ms when unset. */
PX_MUST_CHECK int rds_cooldown_ms(rds_t *r, int64_t def_ms, int64_t *ms);

/* ---- statistics ---- */

/* Placements per colour since the counters began (counts: n entries). */
PX_MUST_CHECK int rds_stats_colors(rds_t *r, int64_t *counts, int n);
/* Users who placed in the current and the minutes-1 previous minutes (HLL). */
PX_MUST_CHECK int rds_active_users(rds_t *r, int64_t now_ms, int minutes, int64_t *n);
/* Event-sink lag: age of the oldest event not yet stored, and pending count. */
PX_MUST_CHECK int rds_sink_lag(rds_t *r, int64_t now_ms, int64_t *lag_ms, int64_t *pending);
/* Calls fn for each api instance with a heartbeat in the last 10 s. */
typedef void (*rds_instance_fn)(void *arg, const char *name, long long conns, double rate);
PX_MUST_CHECK int rds_instances(rds_t *r, int64_t now_ms, rds_instance_fn fn, void *arg);

#endif
