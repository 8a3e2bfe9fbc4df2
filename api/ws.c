/* ws — one WebSocket connection on a hub thread.
 *
 * wslay parses what the client sends (framing, masking, fragmentation,
 * control frames, close codes, the message-size cap) and frames what we
 * send through it (acks, errors, pongs, pings, close). Its send callback
 * never does I/O: it appends to our own send queue, which also holds the
 * shared broadcast frames, so a broadcast is the same bytes for every
 * client and frames never interleave. The queue is written with writev and
 * capped at [ws] max_buffered_bytes: a client that cannot keep up is told
 * 1008 and dropped, and must reconnect and refetch.
 *
 * An idle connection holds only its ws_conn_t. wslay's event context (about
 * 8.8 kB, mostly its 4 KiB input and output buffers) is created when bytes
 * arrive or something must go out through wslay (pings, pongs, close), and
 * freed once it holds nothing and no byte came in for CTX_KEEP_MS
 * (ctx_release); text messages are framed by us when wslay holds nothing to
 * send (send_direct). The send-queue ring is freed whenever it drains. */
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "hub_internal.h"
#include "buf.h"
#include "log.h"
#include "proto.h"
#include "rds.h"
#include "xalloc.h"
#include "metrics.h"

#define READ_BUDGET (64 * 1024) /* bytes per connection per round: fairness */
#define MAX_INFLIGHT 4          /* placements per connection waiting for Redis */
#define CLOSE_GRACE_MS 2000     /* wait this long for the peer's close */
#define CTX_KEEP_MS 1000        /* keep a wslay context this long after a read */

/* ------------------------------------------------------------------ queue */

static void q_grow(ws_conn_t *c)
{
    uint32_t ncap = c->qcap ? c->qcap * 2 : 4;
    ws_out_t *nq = xcalloc(ncap, sizeof *nq);
    for (uint32_t i = 0; i < c->qlen; i++) nq[i] = c->q[(c->qhead + i) % c->qcap];
    free(c->q);
    c->q = nq;
    c->qcap = ncap;
    c->qhead = 0;
}

static ws_out_t *q_tail(ws_conn_t *c)
{
    return c->qlen ? &c->q[(c->qhead + c->qlen - 1) % c->qcap] : NULL;
}

static ws_out_t *q_push(ws_conn_t *c)
{
    if (c->qlen == c->qcap) q_grow(c);
    ws_out_t *o = &c->q[(c->qhead + c->qlen) % c->qcap];
    memset(o, 0, sizeof *o);
    c->qlen++;
    return o;
}

static void out_release(ws_out_t *o)
{
    if (o->f) hub__frame_unref(o->f);
    free(o->own);
    memset(o, 0, sizeof *o);
}

static void q_pop(ws_conn_t *c)
{
    out_release(&c->q[c->qhead]);
    c->qhead = (c->qhead + 1) % c->qcap;
    c->qlen--;
}

static void q_clear(ws_conn_t *c)
{
    while (c->qlen) q_pop(c);
    free(c->q);
    c->q = NULL;
    c->qcap = c->qhead = 0;
    c->buffered = 0;
}

/* Owned bytes go to the tail item when it is owned (one writev entry for a
 * frame's header and payload, and for several small messages). */
static void q_append_own(ws_conn_t *c, const uint8_t *data, size_t n)
{
    ws_out_t *t = q_tail(c);
    if (!t || !t->own || t->cap - t->len < n) {
        if (t && t->own && t->len + n <= 65536) {
            uint32_t ncap = t->cap;
            while (ncap - t->len < n) ncap *= 2;
            t->own = xrealloc(t->own, ncap);
            t->cap = ncap;
        } else {
            t = q_push(c);
            t->cap = n > 512 ? (uint32_t)n : 512;
            t->own = xmalloc(t->cap);
        }
    }
    memcpy(t->own + t->len, data, n);
    t->len += (uint32_t)n;
    c->buffered += n;
}

/* Slow consumer: keep only a partly written head (so the stream stays
 * framed), queue close 1008 and drop the connection once that is out or the
 * grace period ends. Memory stays bounded by the cap. */
static void drop_slow(ws_conn_t *c)
{
    while (c->qlen > 1 || (c->qlen == 1 && c->q[c->qhead].off == 0)) {
        uint32_t last = (c->qhead + c->qlen - 1) % c->qcap;
        c->buffered -= c->q[last].len - c->q[last].off;
        out_release(&c->q[last]);
        c->qlen--;
    }
    static const char reason[] = "too slow: reconnect and refetch the canvas";
    uint8_t fr[4 + sizeof reason];
    fr[0] = 0x88;
    fr[1] = (uint8_t)(2 + sizeof reason - 1);
    fr[2] = 1008 >> 8;
    fr[3] = 1008 & 0xff;
    memcpy(fr + 4, reason, sizeof reason - 1);
    q_append_own(c, fr, 4 + sizeof reason - 1);
    c->state = WS_CLOSING;
    c->drop_after_flush = true;
    c->close_at_ms = c->ht->now_ms + CLOSE_GRACE_MS;
    atomic_fetch_add(&c->ht->app->ws_slow_dropped, 1);
    log_info("ws_slow_consumer", "user %s: more than %d bytes unsent, dropped", c->user_id,
             c->ht->cfg->ws.max_buffered_bytes);
}

static bool over_cap(const ws_conn_t *c)
{
    return c->buffered > (size_t)c->ht->cfg->ws.max_buffered_bytes;
}

/* Writes as much of the queue as the socket takes. */
static void flush(ws_conn_t *c)
{
    while (c->qlen && c->state != WS_DEAD) {
        struct iovec iov[16];
        int n = 0;
        for (uint32_t i = 0; i < c->qlen && n < 16; i++, n++) {
            ws_out_t *o = &c->q[(c->qhead + i) % c->qcap];
            const uint8_t *base = o->f ? o->f->data : o->own;
            iov[n].iov_base = (void *)(base + o->off);
            iov[n].iov_len = o->len - o->off;
        }
        ssize_t w = writev(c->fd, iov, n);
        if (w < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) return; /* EPOLLOUT (edge) follows */
            ws_conn_kill(c, strerror(errno));
            return;
        }
        size_t left = (size_t)w;
        c->buffered -= left;
        while (left) {
            ws_out_t *o = &c->q[c->qhead];
            size_t rem = o->len - o->off;
            if (left < rem) {
                o->off += (uint32_t)left;
                left = 0;
            } else {
                left -= rem;
                q_pop(c);
            }
        }
    }
    if (c->qlen == 0 && c->q) q_clear(c); /* idle connections keep no ring */
}

static void ctx_release(ws_conn_t *c);

/* After any wslay call: move what wslay framed into our queue, write, end
 * the connection when the closing handshake is complete, and give the wslay
 * context back when it holds nothing. */
static void after_io(ws_conn_t *c)
{
    if (c->state == WS_DEAD) return;
    if (c->close_code && !c->drop_after_flush) {
        uint8_t fr[4] = {0x88, 0x02, (uint8_t)(c->close_code >> 8), (uint8_t)c->close_code};
        q_append_own(c, fr, sizeof fr);
        c->drop_after_flush = true; /* wslay's queued reply is never sent */
    }
    if (c->ws && !c->drop_after_flush && wslay_event_want_write(c->ws) &&
        wslay_event_send(c->ws) != 0) {
        ws_conn_kill(c, "wslay send failed");
        return;
    }
    flush(c);
    if (c->state == WS_DEAD) return;
    /* without a context wslay wants to read and has nothing to write */
    bool wslay_done = c->ws && !wslay_event_want_read(c->ws) && !wslay_event_want_write(c->ws);
    if (c->qlen == 0 && (c->drop_after_flush || wslay_done)) {
        ws_conn_kill(c, c->drop_after_flush ? "slow consumer" : "closed");
        return;
    }
    ctx_release(c);
}

/* ------------------------------------------------------------------ wslay */

static ssize_t recv_cb(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, int flags,
                       void *user);
static ssize_t send_cb(wslay_event_context_ptr ctx, const uint8_t *data, size_t len, int flags,
                       void *user);
static int genmask_cb(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, void *user);
static void on_msg_recv_cb(wslay_event_context_ptr ctx,
                           const struct wslay_event_on_msg_recv_arg *arg, void *user);

/* Makes sure c->ws exists: a fresh context gets every setting here, each
 * time it is created. 0, or -1 when wslay could not allocate it: the
 * connection is then killed (c->ws stays NULL). A context is only ever freed
 * between frames, so a new one starts where the stream stands. */
static int ctx_get(ws_conn_t *c)
{
    if (c->ws) return 0;
    assert(wsframe_idle(&c->rx));
    static const struct wslay_event_callbacks cbs = {recv_cb, send_cb, genmask_cb, NULL,
                                                     NULL,    NULL,    on_msg_recv_cb};
    wslay_event_context_ptr ws;
    if (wslay_event_context_server_init(&ws, &cbs, c) != 0) {
        ws_conn_kill(c, "out of memory (wslay context)");
        return -1;
    }
    wslay_event_config_set_max_recv_msg_length(ws, (uint64_t)c->ht->cfg->ws.max_message_bytes);
    c->ws = ws;
    return 0;
}

/* wslay holds nothing of ours to send and is not closing (true without a
 * context): what we frame ourselves goes out in call order */
static bool wslay_quiet(const ws_conn_t *c)
{
    return !c->ws ||
           (!wslay_event_want_write(c->ws) && !wslay_event_get_close_sent(c->ws) &&
            !wslay_event_get_close_received(c->ws) && wslay_event_get_write_enabled(c->ws));
}

/* Frees the context when a new one would behave the same: not inside a
 * wslay call, nothing queued in it (send_cb has moved every framed byte to
 * our queue), no close sent, queued or received (the closing phase keeps
 * it: wslay_event_get_close_sent and the read/write switches live there),
 * and the input between frames outside a fragmented message (wslay_event_recv
 * parses all it reads before it returns, so a partial header or payload is
 * exactly what the tracker shows; wslay has no API for it). */
static void ctx_release(ws_conn_t *c)
{
    if (!c->ws || c->in_wslay || c->state != WS_OPEN || c->drop_after_flush || c->close_code)
        return;
    /* a connection that is sending keeps it (no 8.8 kB calloc per message):
     * the sweep frees it a second or two after the last byte came in */
    if (c->ht->now_ms - c->last_rx_ms < CTX_KEEP_MS) return;
    if (!wslay_quiet(c) || !wslay_event_get_read_enabled(c->ws) || !wsframe_idle(&c->rx)) return;
    wslay_event_context_free(c->ws);
    c->ws = NULL;
}

static ssize_t recv_cb(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, int flags,
                       void *user)
{
    (void)flags;
    ws_conn_t *c = user;
    if (c->extra_off < c->extra_len) {
        size_t n = c->extra_len - c->extra_off;
        if (n > len) n = len;
        memcpy(buf, c->extra + c->extra_off, n);
        wsframe_feed(&c->rx, buf, n);
        c->extra_off += (uint32_t)n;
        if (c->extra_off == c->extra_len) {
            free(c->extra);
            c->extra = NULL;
            c->extra_len = c->extra_off = 0;
        }
        return (ssize_t)n;
    }
    if (c->drained) {
        wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
        return -1;
    }
    if (c->round_bytes >= READ_BUDGET) {
        if (!c->on_again) {
            c->on_again = true;
            c->again_next = c->ht->again;
            c->ht->again = c;
        }
        wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
        return -1;
    }
    for (;;) {
        ssize_t r = read(c->fd, buf, len);
        if (r > 0) {
            if ((size_t)r < len && c->short_read_ends) c->drained = true;
            wsframe_feed(&c->rx, buf, (size_t)r); /* exactly what wslay gets */
            c->round_bytes += (uint32_t)r;
            c->last_rx_ms = c->ht->now_ms;
            c->ping_sent_ms = 0;
            return r;
        }
        if (r < 0 && errno == EINTR) continue;
        if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
        } else {
            c->peer_gone = true; /* EOF or error */
            wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
        }
        return -1;
    }
}

static ssize_t send_cb(wslay_event_context_ptr ctx, const uint8_t *data, size_t len, int flags,
                       void *user)
{
    (void)ctx;
    (void)flags;
    ws_conn_t *c = user;
    if (c->state != WS_DEAD && !c->drop_after_flush) q_append_own(c, data, len);
    return (ssize_t)len;
}

static int genmask_cb(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, void *user)
{
    (void)ctx;
    (void)user;
    return RAND_bytes(buf, (int)len) == 1 ? 0 : -1; /* server frames are unmasked; unused */
}

static void on_text(ws_conn_t *c, const uint8_t *msg, size_t len);

static void on_msg_recv_cb(wslay_event_context_ptr ctx,
                           const struct wslay_event_on_msg_recv_arg *arg, void *user)
{
    ws_conn_t *c = user;
    if (c->state != WS_OPEN) return;
    if (arg->opcode == WSLAY_TEXT_FRAME || arg->opcode == WSLAY_BINARY_FRAME) {
        atomic_fetch_add(&c->ht->app->ws_messages_in, 1);
        /* flood control: a token bucket of messages_per_s, burst twice that;
         * beyond it messages are refused, and a client ten seconds' worth in
         * debt is closed (not sooner: a hub that fell behind reads a
         * well-behaved client's backlog all at once) */
        double rate = c->ht->cfg->ws.messages_per_s, burst = 2 * rate;
        c->tokens += (double)(c->ht->now_ms - c->tokens_ms) * rate / 1000.0;
        c->tokens_ms = c->ht->now_ms;
        if (c->tokens > burst) c->tokens = burst;
        if (c->tokens < 1) {
            c->tokens -= 1;
            if (c->tokens < -10 * rate) {
                ws_conn_close(c, 1008, "message flood");
                return;
            }
            ws_conn_send_error(c, "RATE_LIMITED", "too many messages: slow down");
            return;
        }
        c->tokens -= 1;
        if (arg->opcode == WSLAY_BINARY_FRAME) {
            ws_conn_send_error(c, "BAD_REQUEST", "binary frames are not accepted: send JSON text");
            return;
        }
        if (!proto_utf8_valid(arg->msg, arg->msg_length)) {
            wslay_event_queue_close(ctx, 1007, (const uint8_t *)"invalid UTF-8", 13);
            c->state = WS_CLOSING;
            c->close_at_ms = c->ht->now_ms + CLOSE_GRACE_MS;
            return;
        }
        on_text(c, arg->msg, arg->msg_length);
    } else if (arg->opcode == WSLAY_CONNECTION_CLOSE) {
        /* wslay has already queued its reply (echoing the code). Two
         * cases must be answered differently: a 1-byte body is a protocol
         * error (wslay would echo "no status"), and a close reason must be
         * UTF-8. after_io sends our code instead of wslay's reply. */
        if (arg->msg_length == 1) c->close_code = 1002;
        else if (arg->msg_length > 2 && !proto_utf8_valid(arg->msg + 2, arg->msg_length - 2))
            c->close_code = 1007;
        c->state = WS_CLOSING;
        c->close_at_ms = c->ht->now_ms + CLOSE_GRACE_MS;
    }
    /* pings are answered by wslay; pongs only refresh last_rx_ms */
}

/* ------------------------------------------------------------------ messages */

/* Frames a text message ourselves, straight into the queue: server frames
 * are unmasked, so this is a header in front of the bytes. Only while the
 * connection is open and wslay holds nothing to send (no queued pong, no
 * close), so the wire order stays the order of the calls; acks, errors and
 * the welcome thus need no wslay context. */
static bool send_direct(ws_conn_t *c, const char *s, size_t n)
{
    if (c->state != WS_OPEN || c->close_code || !wslay_quiet(c)) return false;
    uint8_t h[10];
    size_t hl = hub__text_header(h, n);
    q_append_own(c, h, hl);
    q_append_own(c, (const uint8_t *)s, n);
    return true;
}

void ws_conn_send_text(ws_conn_t *c, const char *s, size_t n)
{
    if (c->state == WS_DEAD || c->drop_after_flush) return; /* nothing more goes out */
    if (!send_direct(c, s, n)) {
        if (ctx_get(c) != 0) return;
        struct wslay_event_msg m = {WSLAY_TEXT_FRAME, (const uint8_t *)s, n};
        if (wslay_event_queue_msg(c->ws, &m) != 0) return; /* close already queued: kept */
    }
    if (c->in_wslay) return; /* the caller of wslay_event_recv writes */
    if (c->ht->hold_writes) { /* ws_conn_write_held writes */
        if (!c->on_held) {
            c->on_held = true;
            c->held_next = c->ht->held;
            c->ht->held = c;
        }
        return;
    }
    after_io(c);
}

static void send_error_ex(ws_conn_t *c, const char *code, const char *msg, int64_t remaining_ms)
{
    json_t *o = json_pack("{s:s,s:s,s:s}", "type", "error", "code", code, "message", msg);
    if (remaining_ms > 0) {
        json_object_set_new(o, "cooldownRemaining", json_real((double)remaining_ms / 1000.0));
        json_object_set_new(o, "cooldownRemainingMs", json_integer(remaining_ms));
    }
    char *s = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    ws_conn_send_text(c, s, strlen(s));
    free(s);
}

void ws_conn_send_error(ws_conn_t *c, const char *code, const char *msg)
{
    send_error_ex(c, code, msg, 0);
}

typedef struct place_req {
    ws_conn_t *c;
    int64_t read_us; /* when the placement was read: place_ws_placement_duration_seconds */
    rds_place_args_t a;
    proto_place_t p;
    bool retried;
} place_req_t;

static void on_place_reply(redisAsyncContext *ac, void *reply, void *priv);

static void place(ws_conn_t *c, const proto_place_t *p)
{
    hub_thread_t *ht = c->ht;
    if (ht->stopping) {
        ws_conn_send_error(c, "UNAVAILABLE", "server is shutting down: reconnect");
        return;
    }
    if (c->inflight >= MAX_INFLIGHT) {
        ws_conn_send_error(c, "RATE_LIMITED", "too many placements waiting: wait for the ack");
        return;
    }
    char id[33];
    if (rds_placement_id(id)) {
        ws_conn_send_error(c, "UNAVAILABLE", "random source failed");
        return;
    }
    place_req_t *pr = xmalloc(sizeof *pr);
    pr->c = c;
    pr->read_us = app_mono_us();
    pr->p = *p;
    pr->retried = false;
    rds_place_req_t q = {.user_id = c->user_id,
                         .id = id,
                         .x = p->x,
                         .y = p->y,
                         .color = p->color,
                         .width = ht->app->geom.width,
                         .height = ht->app->geom.height,
                         .cooldown_ms = (int64_t)ht->cfg->cooldown.seconds * 1000,
                         .ip_group = c->ip_group,
                         .ip_cap = ht->cfg->cooldown.per_ip};
    rds_place_args(&q, &pr->a);
    if (rds_async_commandargv(&ht->place, on_place_reply, pr, RDS_PLACE_ARGC, pr->a.argv,
                              pr->a.lens)) {
        free(pr);
        metrics_backend_error(METRICS_REDIS);
        ws_conn_send_error(c, "UNAVAILABLE", "canvas store unavailable, try again");
        return;
    }
    c->inflight++;
}

static void on_place_reply(redisAsyncContext *ac, void *reply, void *priv)
{
    (void)ac;
    place_req_t *pr = priv;
    ws_conn_t *c = pr->c;
    hub_thread_t *ht = c->ht;
    redisReply *rep = reply;
    if (rds_reply_noscript(rep) && !pr->retried) {
        pr->retried = true;
        rds_place_args_eval(&pr->a);
        if (!rds_async_commandargv(&ht->place, on_place_reply, pr, RDS_PLACE_ARGC, pr->a.argv,
                                   pr->a.lens))
            return; /* still in flight */
        rep = NULL;
    }
    c->inflight--;
    rds_place_res_t res;
    char err[200];
    int rc = rds_place_result(rep, &res, err, sizeof err);
    if (c->state != WS_DEAD) {
        switch (rc) {
        case 0: {
            atomic_fetch_add(&ht->app->placed_by_color[pr->p.color & 255], 1);
            /* {"type":"ack","x":..,"y":..,"color":..,"seq":..,"cooldown":s.mmm,
             * "cooldownMs":..,"id":".."}, per placement, so without printf */
            char ack[256], *p = ack;
            BUF_PUT_LIT(p, "{\"type\":\"ack\",\"x\":");
            p = buf_fmt_i64(p, pr->p.x);
            BUF_PUT_LIT(p, ",\"y\":");
            p = buf_fmt_i64(p, pr->p.y);
            BUF_PUT_LIT(p, ",\"color\":");
            p = buf_fmt_i64(p, pr->p.color);
            BUF_PUT_LIT(p, ",\"seq\":");
            p = buf_fmt_i64(p, res.seq);
            BUF_PUT_LIT(p, ",\"cooldown\":");
            p = buf_fmt_milli(p, res.cooldown_ms);
            BUF_PUT_LIT(p, ",\"cooldownMs\":");
            p = buf_fmt_i64(p, res.cooldown_ms);
            BUF_PUT_LIT(p, ",\"id\":\"");
            size_t idn = strnlen(pr->a.id, sizeof pr->a.id);
            memcpy(p, pr->a.id, idn);
            p += idn;
            BUF_PUT_LIT(p, "\"}");
            ws_conn_send_text(c, ack, (size_t)(p - ack));
            break;
        }
        case PX_ECOOLDOWN: {
            metrics_rate_limited(res.ip_limited ? METRICS_LIMIT_IP : METRICS_LIMIT_COOLDOWN);
            char msg[80];
            rds_cooldown_message(&res, msg, sizeof msg);
            send_error_ex(c, "RATE_LIMITED", msg, res.remaining_ms);
            break;
        }
        case PX_EBANNED:
            ws_conn_send_error(c, "BANNED", "this account is banned");
            ws_conn_close(c, 1008, "banned");
            break;
        default:
            metrics_backend_error(METRICS_REDIS);
            log_warn("place_failed", "%s", err);
            ws_conn_send_error(c, "UNAVAILABLE", "canvas store unavailable, try again");
            break;
        }
        metrics_ws_placement(app_mono_us() - pr->read_us);
        if (ht->stopping && c->inflight == 0 && c->state == WS_OPEN)
            ws_conn_close(c, 1001, "server shutting down");
    }
    free(pr);
}

static void on_text(ws_conn_t *c, const uint8_t *msg, size_t len)
{
    proto_ws_msg_t m;
    char err[160];
    int rc = proto_parse_ws((const char *)msg, len, &c->ht->app->geom, &m, err, sizeof err);
    if (rc) {
        ws_conn_send_error(c, proto_error_code(rc), err);
        return;
    }
    switch (m.type) {
    case PROTO_WS_PING: {
        static const char pong[] = "{\"type\":\"pong\"}";
        ws_conn_send_text(c, pong, sizeof pong - 1);
        break;
    }
    case PROTO_WS_PLACE: place(c, &m.place); break;
    }
}

/* ------------------------------------------------------------------ lifecycle */

ws_conn_t *ws_conn_new(hub_thread_t *ht, hub_client_t *hc)
{
    int fl = fcntl(hc->fd, F_GETFL);
    if (fl < 0 || fcntl(hc->fd, F_SETFL, fl | O_NONBLOCK) < 0) {
        log_warn("ws_adopt", "fcntl: %s", strerror(errno));
        hub_client_free(hc);
        return NULL;
    }
    int one = 1;
    setsockopt(hc->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    ws_conn_t *c = xcalloc(1, sizeof *c);
    c->ev_kind = HUB_EV_CONN;
    c->ht = ht;
    c->fd = hc->fd;
    memcpy(c->user_id, hc->user_id, sizeof c->user_id);
    if (hc->ip_group[0]) c->ip_group = xstrdup(hc->ip_group); /* [cooldown] per_ip is on */
    memcpy(c->session_tag, hc->session_tag, sizeof c->session_tag);
    c->extra = hc->extra;
    c->extra_len = (uint32_t)hc->extra_len;
    hc->extra = NULL;
    c->last_rx_ms = c->tokens_ms = ht->now_ms;
    c->tokens = 2.0 * ht->cfg->ws.messages_per_s;
    wsframe_init(&c->rx);
    /* no wslay context yet: the welcome below creates one and gives it back */
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET, .data.ptr = c};
    if (epoll_ctl(ht->epfd, EPOLL_CTL_ADD, c->fd, &ev) != 0) {
        log_warn("ws_adopt", "epoll_ctl: %s", strerror(errno));
        free(c->extra);
        free(c->ip_group);
        free(c);
        hub_client_free(hc);
        return NULL;
    }
    c->next = ht->conns;
    if (ht->conns) ht->conns->prev = c;
    ht->conns = c;
    ht->nconns++;
    atomic_fetch_add(&ht->app->ws_connections, 1);
    hc->fd = -1; /* ours now */
    ws_conn_send_text(c, hc->welcome, hc->welcome_len);
    hub_client_free(hc);
    if (c->state != WS_DEAD && c->extra) ws_conn_read(c);
    return c;
}

void ws_conn_read(ws_conn_t *c)
{
    if (c->state == WS_DEAD) return;
    if (ctx_get(c) != 0) return;
    c->round_bytes = 0;
    c->drained = false;
    c->in_wslay = true;
    int rc = wslay_event_recv(c->ws);
    c->in_wslay = false;
    if (rc != 0) {
        if (!c->peer_gone) {
            /* wslay's frame layer refused the input (oversized or fragmented
             * control frame, a 64-bit length with the top bit set, ...) and
             * gave up without a close frame: send 1002 ourselves, best effort */
            static const uint8_t close1002[] = {0x88, 0x02, 0x03, 0xea};
            if (!wslay_event_get_close_sent(c->ws)) {
                c->drop_after_flush = true;
                q_append_own(c, close1002, sizeof close1002);
                flush(c);
            }
        }
        ws_conn_kill(c, c->peer_gone ? "peer closed" : "protocol error");
        return;
    }
    after_io(c);
}

void ws_conn_write_held(hub_thread_t *ht)
{
    ws_conn_t *c = ht->held;
    ht->held = NULL;
    while (c) {
        ws_conn_t *next = c->held_next;
        c->on_held = false;
        c->held_next = NULL;
        after_io(c); /* returns at once for a dead connection */
        c = next;
    }
}

void ws_conn_on_event(ws_conn_t *c, uint32_t events)
{
    if (c->state == WS_DEAD) return; /* stale event of a connection killed this round */
    if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) {
        /* edge-triggered: bytes that arrive after a short read raise a new
         * event, so a short read ends this one (saves the read() that would
         * say EAGAIN); not when the peer's FIN or an error came with it,
         * which would raise no new event */
        c->short_read_ends = !(events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR));
        ws_conn_read(c);
        c->short_read_ends = false;
    }
    if (c->state != WS_DEAD && (events & EPOLLOUT) && c->qlen) after_io(c);
}

void ws_conn_send_frames(ws_conn_t *c, hub_frame_t *const *f, int n)
{
    if (c->state != WS_OPEN) return;
    size_t done = 0; /* bytes of the frames written at once */
    if (c->qlen == 0) { /* the common case: one syscall, nothing queued */
        struct iovec iov[HUB_MAX_FRAMES];
        size_t total = 0;
        for (int i = 0; i < n; i++) {
            iov[i].iov_base = f[i]->data;
            iov[i].iov_len = f[i]->len;
            total += f[i]->len;
        }
        ssize_t w;
        do w = n == 1 ? write(c->fd, f[0]->data, f[0]->len) : writev(c->fd, iov, n);
        while (w < 0 && errno == EINTR);
        if (w == (ssize_t)total) return;
        if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
            ws_conn_kill(c, strerror(errno));
            return;
        }
        done = w > 0 ? (size_t)w : 0;
    }
    for (int i = 0; i < n; i++) {
        if (done >= f[i]->len) {
            done -= f[i]->len;
            continue;
        }
        ws_out_t *o = q_push(c);
        o->f = hub__frame_ref(f[i]);
        o->len = f[i]->len;
        o->off = (uint32_t)done;
        c->buffered += f[i]->len - done;
        done = 0;
    }
    if (over_cap(c)) drop_slow(c);
}

void ws_conn_close(ws_conn_t *c, uint16_t code, const char *reason)
{
    if (c->state == WS_DEAD) return;
    if (c->state == WS_OPEN) {
        c->state = WS_CLOSING;
        c->close_at_ms = c->ht->now_ms + CLOSE_GRACE_MS;
    }
    if (!c->drop_after_flush) { /* else our own close frame is already queued */
        if (ctx_get(c) != 0) return;
        if (!wslay_event_get_close_sent(c->ws))
            wslay_event_queue_close(c->ws, code, (const uint8_t *)reason,
                                    reason ? strlen(reason) : 0);
    }
    if (!c->in_wslay) after_io(c);
}

void ws_conn_kill(ws_conn_t *c, const char *why)
{
    if (c->state == WS_DEAD) return;
    hub_thread_t *ht = c->ht;
    log_debug("ws_closed", "user %s: %s", c->user_id, why);
    c->state = WS_DEAD;
    epoll_ctl(ht->epfd, EPOLL_CTL_DEL, c->fd, NULL);
    hub__unlink_conn(ht, c);
    ht->nconns--;
    atomic_fetch_sub(&ht->app->ws_connections, 1);
    q_clear(c);
    close(c->fd);
    c->fd = -1;
    c->reap_next = ht->reap;
    ht->reap = c;
}

bool ws_conn_reap(ws_conn_t *c)
{
    if (c->inflight || c->on_again || c->on_held) return false;
    q_clear(c);
    wslay_event_context_free(c->ws); /* NULL-safe */
    free(c->extra);
    free(c->ip_group);
    free(c);
    return true;
}

void ws_conn_sweep(ws_conn_t *c, int64_t now)
{
    const cfg_t *cfg = c->ht->cfg;
    if (c->state == WS_CLOSING) {
        if (now >= c->close_at_ms) ws_conn_kill(c, "close timed out");
        return;
    }
    if (c->ping_sent_ms) {
        if (now - c->ping_sent_ms >= (int64_t)cfg->ws.dead_timeout_s * 1000)
            ws_conn_kill(c, "no answer to ping");
        return;
    }
    ctx_release(c); /* idle for CTX_KEEP_MS */
    if (now - c->last_rx_ms >= (int64_t)cfg->ws.ping_interval_s * 1000) {
        if (ctx_get(c) != 0) return;
        struct wslay_event_msg m = {WSLAY_PING, NULL, 0};
        if (wslay_event_queue_msg(c->ws, &m) == 0) c->ping_sent_ms = now;
        after_io(c); /* sends the ping and gives the context back */
    }
}
