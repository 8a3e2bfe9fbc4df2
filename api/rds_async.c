#include "rds_async.h"

#include <errno.h>
#include <string.h>
#include <sys/epoll.h>
#include <time.h>

#include "app.h"
#include "log.h"
#include "rds.h"

/* ------------------------------------------------------------------ hooks */

/* Only epoll interest changes here; hooks are idempotent. */
static void update(rds_async_t *ra)
{
    if (!ra->_ac || ra->_ac->c.fd < 0) return;
    struct epoll_event ev = {.events = ra->_want, .data.ptr = ra};
    int op = ra->_registered ? EPOLL_CTL_MOD : EPOLL_CTL_ADD;
    if (epoll_ctl(ra->_epfd, op, ra->_ac->c.fd, &ev) == 0) ra->_registered = true;
    else log_warn("redis_async", "%s: epoll_ctl: %s", ra->_name, strerror(errno));
}

static void add_read(void *p)
{
    rds_async_t *ra = p;
    if (ra->_want & EPOLLIN) return;
    ra->_want |= EPOLLIN;
    update(ra);
}

static void del_read(void *p)
{
    rds_async_t *ra = p;
    if (!(ra->_want & EPOLLIN)) return;
    ra->_want &= ~(uint32_t)EPOLLIN;
    update(ra);
}

/* Once connected, output is not written on EPOLLOUT but by rds_async_flush
 * at the end of the hub's round: the commands of a whole round go out in
 * one write, at once (not one round later, after a broadcast slice), and
 * epoll interest changes only when the socket is full. */
static void add_write(void *p)
{
    rds_async_t *ra = p;
    ra->_wpend = true;
    if ((ra->_want & EPOLLOUT) || (ra->_ac && (ra->_ac->c.flags & REDIS_CONNECTED))) return;
    ra->_want |= EPOLLOUT; /* connecting: the connect completes on writable */
    update(ra);
}

static void del_write(void *p)
{
    rds_async_t *ra = p;
    ra->_wpend = false;
    if (!(ra->_want & EPOLLOUT)) return;
    ra->_want &= ~(uint32_t)EPOLLOUT;
    update(ra);
}

static void cleanup(void *p)
{
    rds_async_t *ra = p;
    if (ra->_registered && ra->_ac && ra->_ac->c.fd >= 0)
        epoll_ctl(ra->_epfd, EPOLL_CTL_DEL, ra->_ac->c.fd, NULL);
    ra->_registered = false;
    ra->_want = 0;
    ra->_wpend = false;
}

/* ------------------------------------------------------------------ state */

static void lost(rds_async_t *ra, const char *why)
{
    /* hiredis frees the context right after this callback returns */
    ra->_ac = NULL;
    ra->_registered = false;
    ra->_want = 0;
    ra->_wpend = false;
    bool was_up = ra->_up;
    ra->_up = false;
    if (ra->_freeing) return;
    ra->_retry_at_ms = app_mono_ms() + ra->_backoff_ms;
    if (was_up) log_warn("redis_async", "%s: connection lost: %s", ra->_name, why);
    else log_debug("redis_async", "%s: connect failed: %s", ra->_name, why);
    ra->_backoff_ms = ra->_backoff_ms < 2000 ? ra->_backoff_ms * 2 : 2000;
    if (ra->_on_state) ra->_on_state(ra, false, ra->_arg);
}

static void on_connect(const redisAsyncContext *ac, int status)
{
    rds_async_t *ra = ac->data;
    if (status != REDIS_OK) {
        lost(ra, ac->errstr ? ac->errstr : "connect failed");
        return;
    }
    ra->_up = true;
    ra->_backoff_ms = 100;
    log_info("redis_async", "%s: connected", ra->_name);
    if (ra->_on_state) ra->_on_state(ra, true, ra->_arg);
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
    rds_async_t *ra = ac->data;
    (void)status;
    lost(ra, ac->errstr && ac->errstr[0] ? ac->errstr : "closed");
}

static void connect_now(rds_async_t *ra)
{
    const cfg_t *cfg = ra->_cfg;
    redisAsyncContext *ac = redisAsyncConnect(cfg->redis.host, cfg->redis.port);
    if (!ac || ac->err) {
        log_debug("redis_async", "%s: connect: %s", ra->_name, ac ? ac->errstr : "no memory");
        if (ac) redisAsyncFree(ac);
        ra->_retry_at_ms = app_mono_ms() + ra->_backoff_ms;
        ra->_backoff_ms = ra->_backoff_ms < 2000 ? ra->_backoff_ms * 2 : 2000;
        return;
    }
    ra->_ac = ac;
    ac->data = ra;
    ac->ev.data = ra;
    ac->ev.addRead = add_read;
    ac->ev.delRead = del_read;
    ac->ev.addWrite = add_write;
    ac->ev.delWrite = del_write;
    ac->ev.cleanup = cleanup;
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    redisEnableKeepAlive(&ac->c);
    if (cfg->redis.password[0])
        redisAsyncCommand(ac, NULL, NULL, "AUTH %s", cfg->redis.password);
    if (cfg->redis.db) redisAsyncCommand(ac, NULL, NULL, "SELECT %d", cfg->redis.db);
    add_write(ra); /* the connect completes when the socket becomes writable */
    add_read(ra);
}

void rds_async_init(rds_async_t *ra, int ev_kind, const char *name, const cfg_t *cfg, int epfd,
                    void (*on_state)(rds_async_t *ra, bool up, void *arg), void *arg)
{
    memset(ra, 0, sizeof *ra);
    ra->ev_kind = ev_kind;
    ra->_cfg = cfg;
    ra->_epfd = epfd;
    ra->_name = name;
    ra->_on_state = on_state;
    ra->_arg = arg;
    ra->_backoff_ms = 100;
    connect_now(ra);
}

void rds_async_deinit(rds_async_t *ra)
{
    ra->_freeing = true;
    if (ra->_ac) {
        redisAsyncContext *ac = ra->_ac;
        redisAsyncFree(ac); /* runs pending callbacks with NULL, then on_disconnect */
    }
    ra->_ac = NULL;
}

void rds_async_on_event(rds_async_t *ra, uint32_t events)
{
    redisAsyncContext *ac = ra->_ac;
    if (!ac) return;
    if (events & (EPOLLIN | EPOLLERR | EPOLLHUP)) redisAsyncHandleRead(ac);
    /* the read may have lost (and freed) the context */
    if (ra->_ac == ac && (events & (EPOLLOUT | EPOLLERR))) redisAsyncHandleWrite(ac);
}

void rds_async_flush(rds_async_t *ra)
{
    redisAsyncContext *ac = ra->_ac;
    if (!ac || !ra->_wpend || (ra->_want & EPOLLOUT) || !(ac->c.flags & REDIS_CONNECTED)) return;
    redisAsyncHandleWrite(ac); /* calls del_write when all is written (or loses ac) */
    if (ra->_ac == ac && ra->_wpend) { /* the socket is full: wait for EPOLLOUT */
        ra->_want |= EPOLLOUT;
        update(ra);
    }
}

void rds_async_tick(rds_async_t *ra, int64_t now_ms)
{
    if (!ra->_ac && !ra->_freeing && now_ms >= ra->_retry_at_ms) connect_now(ra);
}

bool rds_async_up(const rds_async_t *ra) { return ra->_ac && ra->_up; }

bool rds_async_awaiting(const rds_async_t *ra)
{
    const redisAsyncContext *ac = ra->_ac;
    return ac && ra->_up && !ra->_wpend && ac->replies.head != NULL;
}

int rds_async_commandargv(rds_async_t *ra, redisCallbackFn *fn, void *privdata, int argc,
                          const char **argv, const size_t *lens)
{
    if (!rds_async_up(ra)) return PX_EBACKEND;
    /* formatted here when it fits: hiredis formats with sdscatfmt and an
     * allocation per command, 7 % of the api's CPU when placing flat out */
    char cmd[2048];
    size_t n = rds_format_command(cmd, sizeof cmd, argc, argv, lens);
    int rc = n ? redisAsyncFormattedCommand(ra->_ac, fn, privdata, cmd, n)
               : redisAsyncCommandArgv(ra->_ac, fn, privdata, argc, argv, lens);
    return rc == REDIS_OK ? 0 : PX_EBACKEND;
}
