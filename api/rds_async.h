/* rds_async — one hiredis (0.14) async connection driven by a hub's epoll
 * set: our own adapter for the five event hooks, non-blocking connect,
 * AUTH/SELECT from the config, reconnect with capped backoff driven by the
 * hub's timer. hiredis owns and closes the fd.
 *
 * Hub thread only: every function must be called on the thread that owns
 * epfd. Replies handed to command callbacks die when the callback returns;
 * a NULL reply means the connection was lost (or is being freed). */
#ifndef PLACE_RDS_ASYNC_H
#define PLACE_RDS_ASYNC_H

#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <stdbool.h>
#include <stdint.h>

#include "cfg.h"
#include "px.h"

/* The epoll data.ptr of the connection's fd is the rds_async_t itself, and
 * its first member is this tag, so a dispatcher can tell event sources
 * apart by reading an int at the pointer. */
typedef struct rds_async {
    int ev_kind; /* public, read-only */
    /* private */
    const cfg_t *_cfg;
    int _epfd;
    redisAsyncContext *_ac;
    uint32_t _want; /* EPOLLIN / EPOLLOUT registered with epoll */
    bool _wpend;    /* hiredis has output to write */
    bool _registered;
    bool _up;
    bool _freeing;
    int _backoff_ms;
    int64_t _retry_at_ms;
    const char *_name;
    void (*_on_state)(struct rds_async *ra, bool up, void *arg);
    void *_arg;
} rds_async_t;

/* Initialises ra (caller-provided storage) and starts connecting. on_state
 * (may be NULL) is called with up=true once connected (and after AUTH/SELECT
 * were sent), with up=false when the connection is lost or a connect fails.
 * name (borrowed, static) is used in logs. */
void rds_async_init(rds_async_t *ra, int ev_kind, const char *name, const cfg_t *cfg, int epfd,
                    void (*on_state)(rds_async_t *ra, bool up, void *arg), void *arg);
/* Frees the connection; pending callbacks run with a NULL reply, on_state
 * is not called. */
void rds_async_deinit(rds_async_t *ra);

/* Call from the hub's dispatcher for events on this connection's fd. */
void rds_async_on_event(rds_async_t *ra, uint32_t events);
/* Writes the queued commands (call once per round of the hub's loop, after
 * the events and before anything slow or blocking). */
void rds_async_flush(rds_async_t *ra);
/* Call from the hub's timer: reconnects once the backoff has passed. */
void rds_async_tick(rds_async_t *ra, int64_t now_ms);

bool rds_async_up(const rds_async_t *ra);

/* True when every queued command is written and a reply is still due: a
 * thread with other work may then wait for the socket a little instead of
 * keeping its core from Redis (see hub.c, broadcasts). */
bool rds_async_awaiting(const rds_async_t *ra);

/* Queues a command (pipelined; written by the next rds_async_flush).
 * argv/lens are borrowed (copied by hiredis). 0, or PX_EBACKEND when the
 * connection is down (fn is not called then). */
PX_MUST_CHECK int rds_async_commandargv(rds_async_t *ra, redisCallbackFn *fn, void *privdata,
                                        int argc, const char **argv, const size_t *lens);

#endif
