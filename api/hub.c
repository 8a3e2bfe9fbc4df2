/* hub — hub threads, their inboxes, the subscription and the batches.
 *
 * One loop iteration (STYLE rule 9): drain the inbox (new sockets,
 * broadcast frames, bans, stop) -> epoll_wait -> dispatch events (a
 * connection killed during dispatch is only marked; its later events in the
 * same batch are skipped) -> read connections whose read budget ran out ->
 * hub 0 flushes the batch when a tick has passed -> reap.
 *
 * Fan-out: hub 0 is subscribed to canvas:updates. Each "u ..." message
 * becomes one JSON update appended to the batch; at most once per tick the
 * batch becomes ONE frame (a JSON array when it holds several updates),
 * posted by reference to every hub, which writes the same bytes to each of
 * its clients. Control messages ("c {json}") flush the batch first, so they
 * reach clients in channel order. */
#include "hub.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "hub_internal.h"
#include "app.h"
#include "buf.h"
#include "log.h"
#include "proto.h"
#include "rds.h"
#include "xalloc.h"

struct hub {
    app_t *app;
    int n;
    hub_thread_t *t;
    _Atomic unsigned rr;
};

enum { IN_CONN = 1, IN_FRAME, IN_BAN, IN_LOGOUT, IN_STOP };

struct hub_in {
    int type;
    hub_client_t *c;  /* IN_CONN */
    hub_frame_t *f;   /* IN_FRAME */
    char uid[37];     /* IN_BAN: a user id; IN_LOGOUT: a session tag */
    struct hub_in *next;
};

/* ------------------------------------------------------------------ frames */

size_t hub__text_header(uint8_t h[10], size_t len)
{
    h[0] = 0x81; /* FIN, text */
    if (len < 126) {
        h[1] = (uint8_t)len;
        return 2;
    }
    if (len < 65536) {
        h[1] = 126;
        h[2] = (uint8_t)(len >> 8);
        h[3] = (uint8_t)len;
        return 4;
    }
    h[1] = 127;
    for (int i = 0; i < 8; i++) h[2 + i] = (uint8_t)((uint64_t)len >> (56 - 8 * i));
    return 10;
}

hub_frame_t *hub__frame_text(const char *payload, size_t len)
{
    uint8_t h[10];
    size_t hl = hub__text_header(h, len);
    hub_frame_t *f = xmalloc(sizeof *f + hl + len);
    atomic_init(&f->refs, 1);
    f->len = (uint32_t)(hl + len);
    memcpy(f->data, h, hl);
    memcpy(f->data + hl, payload, len);
    return f;
}

hub_frame_t *hub__frame_ref(hub_frame_t *f)
{
    atomic_fetch_add(&f->refs, 1);
    return f;
}

void hub__frame_unref(hub_frame_t *f)
{
    if (f && atomic_fetch_sub(&f->refs, 1) == 1) free(f);
}

/* ------------------------------------------------------------------ inbox */

static void post(hub_thread_t *ht, hub_in_t *in)
{
    in->next = NULL;
    pthread_mutex_lock(&ht->mu);
    if (ht->in_tail) ht->in_tail->next = in;
    else ht->in_head = in;
    ht->in_tail = in;
    bool wake = !ht->wake_pending; /* wake-ups coalesce */
    ht->wake_pending = true;
    pthread_mutex_unlock(&ht->mu);
    if (wake) {
        uint64_t one = 1;
        ssize_t w = write(ht->wake.fd, &one, sizeof one);
        (void)w; /* an eventfd write only fails on overflow, which still wakes */
    }
}

void hub_client_free(hub_client_t *c)
{
    if (!c) return;
    if (c->fd >= 0) close(c->fd);
    free(c->welcome);
    free(c->extra);
    free(c);
}

void hub_adopt(hub_t *h, hub_client_t *c)
{
    unsigned i = atomic_fetch_add(&h->rr, 1) % (unsigned)h->n;
    hub_in_t *in = xcalloc(1, sizeof *in);
    in->type = IN_CONN;
    in->c = c;
    post(&h->t[i], in);
}

/* Broadcasts run as jobs, sliced: each loop iteration writes the current
 * frames to at most BCAST_SLICE clients, so placement replies and reads are
 * served between slices instead of waiting for a sweep over every client.
 * Frames that arrive meanwhile wait in pend and go out together in the next
 * job (one writev per client however many frames piled up). The CPU time
 * of a whole job feeds hub 0's tick, which stretches so broadcasts take at
 * most about 40 % of a hub's time (BCAST_TICK_FACTOR). CPU time, not wall
 * time: a hub that was preempted mid-job (the cores are shared with Redis,
 * PostgreSQL and the other hubs) did not spend that time writing, and
 * stretching the tick for it would only add latency. Slices were 256
 * clients, then 32 (about 0.2 ms of writes; at 5,000 clients 256 gave ack
 * p50/p99 7.2/21.7 ms, 32 gave 1.5/9.0 ms at the same broadcast latency),
 * now 16 (below).
 *
 * Between two slices of a job, a hub that has placements waiting for Redis
 * waits for an event, the reply or any other, up to BCAST_AWAIT_US
 * (hub_wait) instead of going on writing at once. Two hubs broadcasting at
 * once keep both cores busy for the whole round, and Redis, woken by our command,
 * waited for a core behind them: `perf sched` at 1,000 viewers showed Redis's
 * wake-up delay at p99 2.0 ms (max 9.5), and during its waits over 1.5 ms
 * the two cores ran hub-0 and hub-1 nine tenths of the time. Waiting hands
 * this hub's core to Redis, and the reply is served the moment it arrives.
 * With slices of 16 clients (the waits come sooner than with 32; 8 cost
 * fan-out efficiency, 81 % of the bare writer), the api's own read -> ack
 * queued p99 at 1,000 / 5,000 / 10,000 viewers went from 4.2-4.3 / 4.2-4.3 /
 * 4.3-4.4 ms to 1.6-1.9 / 2.6-3.8 / 3.4-4.0 ms, with broadcast latency and
 * fan-out inside their spread (make bench, five runs with slices of 16).
 * sched_yield() between slices instead helped less: the hub itself then
 * waited for a core with replies unread. */
#define BCAST_SLICE 16
#define BCAST_AWAIT_US 500

/* The tick is this many times the CPU time of the slowest hub's last
 * broadcast job, in tenths. With the cores shared with the clients, a
 * shorter tick makes each round slower in wall time and a longer one makes
 * updates wait: loadgen, 10 probes spread through the viewers, broadcast
 * p99 at 5,000 / 10,000 viewers: factor 1.5: 93-96 / 261 ms; 2: 83-97 /
 * 193-241 ms; 2.5: 83-92 / 165-188 ms (and 15 % less api CPU); 3: 96-101 /
 * 209-271 ms. */
#define BCAST_TICK_FACTOR 25

/* takes: f */
static void bcast_enqueue(hub_thread_t *ht, hub_frame_t *f)
{
    if (ht->npend == ht->cappend) {
        ht->cappend = ht->cappend ? ht->cappend * 2 : 16;
        ht->pend = xreallocarray(ht->pend, (size_t)ht->cappend, sizeof *ht->pend);
    }
    ht->pend[ht->npend++] = f;
}

static void bcast_run(hub_thread_t *ht)
{
    struct timespec t0, t1;
    if (!ht->njob && !ht->npend) return;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t0);
    if (!ht->njob) {
        int n = ht->npend < HUB_MAX_FRAMES ? ht->npend : HUB_MAX_FRAMES;
        memcpy(ht->job, ht->pend, (size_t)n * sizeof *ht->pend);
        memmove(ht->pend, ht->pend + n, (size_t)(ht->npend - n) * sizeof *ht->pend);
        ht->npend -= n;
        ht->njob = n;
        ht->cursor = ht->conns;
        ht->job_busy_us = 0;
    }
    size_t k = 0;
    while (ht->cursor && k < BCAST_SLICE) {
        ws_conn_t *c = ht->cursor;
        ht->cursor = c->next; /* c may be killed (unlinked) by the write */
        ws_conn_send_frames(c, ht->job, ht->njob);
        k++;
    }
    atomic_fetch_add(&ht->app->ws_frames_out, k * (size_t)ht->njob);
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t1);
    ht->job_busy_us +=
        (int64_t)(t1.tv_sec - t0.tv_sec) * 1000000 + (t1.tv_nsec - t0.tv_nsec) / 1000;
    if (!ht->cursor) { /* job done */
        for (int i = 0; i < ht->njob; i++) hub__frame_unref(ht->job[i]);
        ht->njob = 0;
        atomic_store(&ht->bcast_us, ht->job_busy_us);
    }
}

void hub__unlink_conn(hub_thread_t *ht, ws_conn_t *c)
{
    if (ht->cursor == c) ht->cursor = c->next;
    if (c->prev) c->prev->next = c->next;
    else ht->conns = c->next;
    if (c->next) c->next->prev = c->prev;
    c->prev = c->next = NULL;
}

/* the tick in ms: [ws] tick_ms, or BCAST_TICK_FACTOR / 10 times the CPU
 * time of the slowest hub's last broadcast */
static int64_t tick_now(const hub_thread_t *ht)
{
    int64_t us = 0;
    for (int i = 0; i < ht->hub->n; i++) {
        int64_t b = atomic_load(&ht->hub->t[i].bcast_us);
        if (b > us) us = b;
    }
    int64_t ms = BCAST_TICK_FACTOR * us / 10000;
    return ms > ht->cfg->ws.tick_ms ? ms : ht->cfg->ws.tick_ms;
}

/* hub 0: hands f to every hub (ours directly). takes: f */
static void post_frame_all(hub_thread_t *ht, hub_frame_t *f)
{
    hub_t *h = ht->hub;
    for (int i = 0; i < h->n; i++) {
        if (&h->t[i] == ht) continue;
        hub_in_t *in = xcalloc(1, sizeof *in);
        in->type = IN_FRAME;
        in->f = hub__frame_ref(f);
        post(&h->t[i], in);
    }
    bcast_enqueue(ht, f);
}

static void flush_batch(hub_thread_t *ht);

/* IN_BAN closes a user's sockets, IN_LOGOUT one session's */
static void kick_local(hub_thread_t *ht, int type, const char *key)
{
    for (ws_conn_t *c = ht->conns, *next; c; c = next) {
        next = c->next;
        if (c->state != WS_OPEN) continue;
        if (type == IN_BAN && !strcmp(c->user_id, key)) {
            ws_conn_send_error(c, "BANNED", "this account has been banned");
            ws_conn_close(c, 1008, "banned");
        } else if (type == IN_LOGOUT && !strcmp(c->session_tag, key)) {
            ws_conn_send_error(c, "UNAUTHORIZED", "logged out");
            ws_conn_close(c, 1008, "logged out");
        }
    }
}

static void kick_all(hub_thread_t *ht, int type, const char *key)
{
    flush_batch(ht);
    hub_t *h = ht->hub;
    for (int i = 0; i < h->n; i++) {
        if (&h->t[i] == ht) continue;
        hub_in_t *in = xcalloc(1, sizeof *in);
        in->type = type;
        snprintf(in->uid, sizeof in->uid, "%s", key);
        post(&h->t[i], in);
    }
    kick_local(ht, type, key);
}

static void begin_stop(hub_thread_t *ht)
{
    ht->stopping = true;
    int64_t grace = ht->cfg->http.shutdown_timeout_ms;
    if (grace > 5000) grace = 5000;
    ht->stop_deadline_ms = ht->now_ms + grace;
    for (ws_conn_t *c = ht->conns, *next; c; c = next) {
        next = c->next;
        /* a client with placements in flight gets their answers first */
        if (c->inflight == 0) ws_conn_close(c, 1001, "server shutting down");
    }
}

static void drain_inbox(hub_thread_t *ht)
{
    uint64_t v;
    ssize_t r = read(ht->wake.fd, &v, sizeof v);
    (void)r;
    pthread_mutex_lock(&ht->mu);
    hub_in_t *in = ht->in_head;
    ht->in_head = ht->in_tail = NULL;
    ht->wake_pending = false;
    pthread_mutex_unlock(&ht->mu);
    while (in) {
        hub_in_t *next = in->next;
        switch (in->type) {
        case IN_FRAME: bcast_enqueue(ht, in->f); break;
        case IN_CONN:
            if (ht->stopping) {
                hub_client_free(in->c);
            } else {
                (void)ws_conn_new(ht, in->c);
            }
            break;
        case IN_BAN:
        case IN_LOGOUT: kick_local(ht, in->type, in->uid); break;
        case IN_STOP:
            if (!ht->stopping) begin_stop(ht);
            break;
        }
        free(in);
        in = next;
    }
}

/* ------------------------------------------------------------------ batches (hub 0) */

static void flush_batch(hub_thread_t *ht)
{
    if (!ht->batch_n) return;
    /* batch.data is "[a,b,c": one update goes out bare, several as an array */
    hub_frame_t *f;
    if (ht->batch_n == 1) {
        f = hub__frame_text(ht->batch.data + 1, ht->batch.len - 1);
    } else {
        buf_putc(&ht->batch, ']');
        f = hub__frame_text(ht->batch.data, ht->batch.len);
    }
    buf_reset(&ht->batch);
    ht->batch_n = 0;
    ht->last_flush_ms = ht->now_ms;
    post_frame_all(ht, f);
}

static void notice_all(hub_thread_t *ht, const char *json)
{
    flush_batch(ht); /* keep channel order */
    post_frame_all(ht, hub__frame_text(json, strlen(json)));
}

/* the next space-separated field of s[*i..len) */
static bool next_field(const char *s, size_t len, size_t *i, const char **f, size_t *n)
{
    if (*i >= len) return false;
    const char *sp = memchr(s + *i, ' ', len - *i);
    size_t end = sp ? (size_t)(sp - s) : len;
    *f = s + *i;
    *n = end - *i;
    *i = sp ? end + 1 : len;
    return *n > 0;
}

/* "u <seq> <x> <y> <color> <userId> <ms>" -> one JSON update in the batch.
 * Runs for every placement, so it parses and prints without stdio. */
static bool batch_update(hub_thread_t *ht, const char *s, size_t len)
{
    int64_t v[4], t;
    const char *f, *uid;
    size_t n, uidn, i = 2; /* past "u " */
    for (int k = 0; k < 4; k++)
        if (!next_field(s, len, &i, &f, &n) || !proto_parse_i64(f, n, &v[k]) || v[k] < 0 ||
            v[k] > INT32_MAX)
            return false;
    if (!next_field(s, len, &i, &uid, &uidn) || uidn != 36 || !next_field(s, len, &i, &f, &n) ||
        !proto_parse_i64(f, n, &t) || f + n != s + len)
        return false;
    char ubuf[37];
    memcpy(ubuf, uid, 36);
    ubuf[36] = '\0';
    if (!proto_uuid_valid(ubuf)) return false;
    buf_t *b = &ht->batch;
    buf_reserve(b, 200);
    char *p = b->data + b->len;
    *p++ = ht->batch_n ? ',' : '[';
    BUF_PUT_LIT(p, "{\"type\":\"update\",\"x\":");
    p = buf_fmt_i64(p, v[1]);
    BUF_PUT_LIT(p, ",\"y\":");
    p = buf_fmt_i64(p, v[2]);
    BUF_PUT_LIT(p, ",\"color\":");
    p = buf_fmt_i64(p, v[3]);
    BUF_PUT_LIT(p, ",\"seq\":");
    p = buf_fmt_i64(p, v[0]);
    BUF_PUT_LIT(p, ",\"userId\":\"");
    memcpy(p, ubuf, 36);
    p += 36;
    BUF_PUT_LIT(p, "\",\"time\":");
    p = buf_fmt_i64(p, t);
    *p++ = '}';
    b->len = (size_t)(p - b->data);
    b->data[b->len] = '\0';
    ht->batch_n++;
    atomic_fetch_add(&ht->app->ws_updates, 1);
    return true;
}

/* "c {json}": settings / reset / resync / ban */
static bool control(hub_thread_t *ht, const char *s, size_t len)
{
    json_error_t jerr;
    json_t *o = json_loadb(s + 2, len - 2, 0, &jerr);
    const char *type = o ? json_string_value(json_object_get(o, "type")) : NULL;
    bool ok = true;
    char out[256];
    if (!type) {
        ok = false;
    } else if (!strcmp(type, "settings")) {
        json_int_t ms = json_integer_value(json_object_get(o, "cooldownMs"));
        snprintf(out, sizeof out, "{\"type\":\"settings\",\"cooldown\":%.3f,\"cooldownMs\":%lld}",
                 (double)ms / 1000.0, (long long)ms);
        notice_all(ht, out);
    } else if (!strcmp(type, "reset")) {
        snprintf(out, sizeof out, "{\"type\":\"reset\",\"seq\":%lld}",
                 (long long)json_integer_value(json_object_get(o, "seq")));
        notice_all(ht, out);
    } else if (!strcmp(type, "resync")) {
        notice_all(ht, "{\"type\":\"resync\"}");
    } else if (!strcmp(type, "ban")) {
        const char *uid = json_string_value(json_object_get(o, "userId"));
        ok = uid && proto_uuid_valid(uid);
        if (ok) kick_all(ht, IN_BAN, uid);
    } else if (!strcmp(type, "logout")) {
        const char *tag = json_string_value(json_object_get(o, "session"));
        ok = tag && strlen(tag) == 16 && proto_hex_valid(tag, 16);
        if (ok) kick_all(ht, IN_LOGOUT, tag);
    } else {
        ok = false;
    }
    json_decref(o);
    return ok;
}

static void on_sub_message(redisAsyncContext *ac, void *reply, void *priv)
{
    (void)ac;
    hub_thread_t *ht = priv;
    redisReply *r = reply;
    if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != 3 ||
        r->element[0]->type != REDIS_REPLY_STRING)
        return;
    if (strcmp(r->element[0]->str, "message") != 0) return; /* subscribe confirmation */
    redisReply *p = r->element[2];
    if (p->type != REDIS_REPLY_STRING || p->len < 2) return;
    bool ok = false;
    if (p->str[0] == 'u' && p->str[1] == ' ') ok = batch_update(ht, p->str, p->len);
    else if (p->str[0] == 'c' && p->str[1] == ' ') ok = control(ht, p->str, p->len);
    if (!ok) log_warn("pubsub_bad_message", "ignored: %.80s", p->str);
}

static void on_sub_state(rds_async_t *ra, bool up, void *arg)
{
    hub_thread_t *ht = arg;
    if (!up) return;
    const char *argv[] = {"SUBSCRIBE", RDS_CHANNEL};
    size_t lens[] = {9, strlen(RDS_CHANNEL)};
    if (rds_async_commandargv(ra, on_sub_message, ht, 2, argv, lens)) return;
    /* updates published while we were not subscribed are lost to our
     * clients: tell them to refetch (they would also see the seq gap, but
     * only with the next update) */
    if (ht->sub_ever_up) notice_all(ht, "{\"type\":\"resync\"}");
    ht->sub_ever_up = true;
}

/* ------------------------------------------------------------------ loop */

static void reap(hub_thread_t *ht)
{
    ws_conn_t **pp = &ht->reap;
    while (*pp) {
        ws_conn_t *c = *pp;
        ws_conn_t *next = c->reap_next;
        if (ws_conn_reap(c)) *pp = next;
        else pp = &c->reap_next;
    }
}

/* hub 0, once a second: this instance's WebSocket count and placement rate
 * for GET /api/v1/admin/stats (fire and forget on the async connection) */
static void heartbeat(hub_thread_t *ht)
{
    uint64_t placed = 0;
    for (int i = 0; i < ht->cfg->canvas.palette_len; i++)
        placed += atomic_load(&ht->app->placed_by_color[i]);
    int64_t now = ht->now_ms;
    double rate = 0;
    if (ht->hb_ms && now > ht->hb_ms)
        rate = (double)(placed - ht->hb_placed) * 1000.0 / (double)(now - ht->hb_ms);
    ht->hb_ms = now;
    ht->hb_placed = placed;
    char val[96];
    snprintf(val, sizeof val, "%lld %lld %.1f", (long long)atomic_load(&ht->app->ws_connections),
             (long long)app_now_ms(), rate);
    const char *argv[] = {"HSET", RDS_KEY_INSTANCES, ht->cfg->instance, val};
    size_t lens[] = {4, strlen(RDS_KEY_INSTANCES), strlen(ht->cfg->instance), strlen(val)};
    if (rds_async_commandargv(&ht->place, NULL, NULL, 4, argv, lens))
        log_debug("heartbeat_skipped", "redis down");
}

static void sweep(hub_thread_t *ht)
{
    if (ht->idx == 0) heartbeat(ht);
    for (ws_conn_t *c = ht->conns, *next; c; c = next) {
        next = c->next;
        ws_conn_sweep(c, ht->now_ms);
    }
    rds_async_tick(&ht->place, ht->now_ms);
    if (ht->idx == 0) rds_async_tick(&ht->sub, ht->now_ms);
}

/* epoll_wait for the loop: at once while work is queued; while a broadcast
 * job runs, at once too, unless a placement's reply is due from Redis: then
 * up to BCAST_AWAIT_US for any event (epoll_pwait2, for the microseconds;
 * kernels before 5.11 lack it and go on at once) */
static int hub_wait(hub_thread_t *ht, struct epoll_event *evs, int max)
{
    static _Atomic bool no_pwait2;
    if (ht->again || ht->npend) return epoll_wait(ht->epfd, evs, max, 0);
    if (!ht->njob) return epoll_wait(ht->epfd, evs, max, -1);
    if (!rds_async_awaiting(&ht->place) || atomic_load(&no_pwait2))
        return epoll_wait(ht->epfd, evs, max, 0);
    struct timespec ts = {0, BCAST_AWAIT_US * 1000L};
    int n = epoll_pwait2(ht->epfd, evs, max, &ts, NULL);
    if (n < 0 && errno == ENOSYS) {
        atomic_store(&no_pwait2, true);
        return epoll_wait(ht->epfd, evs, max, 0);
    }
    return n;
}

static void *thread_main(void *arg)
{
    hub_thread_t *ht = arg;
    char name[16];
    snprintf(name, sizeof name, "hub-%d", ht->idx);
    log_thread_name(name);
    ht->now_ms = app_mono_ms();
    rds_async_init(&ht->place, HUB_EV_REDIS, "placements", ht->cfg, ht->epfd, NULL, NULL);
    if (ht->idx == 0)
        rds_async_init(&ht->sub, HUB_EV_REDIS, "subscription", ht->cfg, ht->epfd, on_sub_state,
                       ht);
    struct epoll_event evs[256];
    for (;;) {
        int n = hub_wait(ht, evs, 256);
        if (n < 0 && errno != EINTR) {
            log_error("hub_epoll", "%s", strerror(errno));
            break;
        }
        ht->now_ms = app_mono_ms();
        for (int i = 0; i < n; i++) {
            int kind = *(int *)evs[i].data.ptr;
            uint32_t e = evs[i].events;
            switch (kind) {
            case HUB_EV_CONN: ws_conn_on_event(evs[i].data.ptr, e); break;
            case HUB_EV_REDIS:
                ht->hold_writes = true;
                rds_async_on_event(evs[i].data.ptr, e);
                ht->hold_writes = false;
                ws_conn_write_held(ht);
                break;
            case HUB_EV_WAKE: drain_inbox(ht); break;
            case HUB_EV_TIMER: {
                uint64_t x;
                ssize_t r = read(ht->timer.fd, &x, sizeof x);
                (void)r;
                if (ht->now_ms >= ht->next_sweep_ms) {
                    sweep(ht);
                    ht->next_sweep_ms = ht->now_ms + 1000;
                }
                break;
            }
            }
        }
        /* connections that used up their read budget */
        ws_conn_t *again = ht->again;
        ht->again = NULL;
        while (again) {
            ws_conn_t *c = again;
            again = c->again_next;
            c->on_again = false;
            ws_conn_read(c);
        }
        /* this round's placements go to Redis now, before a broadcast slice */
        rds_async_flush(&ht->place);
        if (ht->idx == 0) {
            rds_async_flush(&ht->sub);
            if (ht->batch_n && ht->now_ms - ht->last_flush_ms >= tick_now(ht)) flush_batch(ht);
        }
        bcast_run(ht);
        reap(ht);
        if (ht->stopping) {
            if (ht->now_ms >= ht->stop_deadline_ms)
                for (ws_conn_t *c = ht->conns, *next; c; c = next) {
                    next = c->next;
                    ws_conn_kill(c, "shutdown");
                }
            if (!ht->conns) break;
        }
    }
    /* in-flight placements are answered with NULL: their connections are dead */
    rds_async_deinit(&ht->place);
    if (ht->idx == 0) rds_async_deinit(&ht->sub);
    for (ws_conn_t *c = ht->conns, *next; c; c = next) {
        next = c->next;
        ws_conn_kill(c, "shutdown");
    }
    for (int i = 0; i < ht->njob; i++) hub__frame_unref(ht->job[i]);
    for (int i = 0; i < ht->npend; i++) hub__frame_unref(ht->pend[i]);
    ht->njob = ht->npend = 0;
    free(ht->pend);
    ht->pend = NULL;
    for (ws_conn_t *c = ht->again; c; c = c->again_next) c->on_again = false;
    ht->again = NULL;
    reap(ht);
    if (ht->reap) log_warn("hub_leak", "connections still referenced at exit");
    return NULL;
}

/* ------------------------------------------------------------------ start / stop */

static int thread_init(hub_t *h, int i)
{
    hub_thread_t *ht = &h->t[i];
    ht->hub = h;
    ht->app = h->app;
    ht->cfg = h->app->cfg;
    ht->idx = i;
    ht->wake.ev_kind = HUB_EV_WAKE;
    ht->timer.ev_kind = HUB_EV_TIMER;
    ht->epfd = epoll_create1(EPOLL_CLOEXEC);
    ht->wake.fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    ht->timer.fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    pthread_mutex_init(&ht->mu, NULL);
    buf_init(&ht->batch);
    if (ht->epfd < 0 || ht->wake.fd < 0 || ht->timer.fd < 0) return -errno;
    int tick = ht->cfg->ws.tick_ms;
    struct itimerspec its = {{tick / 1000, (long)(tick % 1000) * 1000000L},
                             {tick / 1000, (long)(tick % 1000) * 1000000L}};
    if (timerfd_settime(ht->timer.fd, 0, &its, NULL) < 0) return -errno;
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &ht->wake};
    if (epoll_ctl(ht->epfd, EPOLL_CTL_ADD, ht->wake.fd, &ev) < 0) return -errno;
    ev.data.ptr = &ht->timer;
    if (epoll_ctl(ht->epfd, EPOLL_CTL_ADD, ht->timer.fd, &ev) < 0) return -errno;
    return 0;
}

static void thread_deinit(hub_thread_t *ht)
{
    if (ht->epfd >= 0) close(ht->epfd);
    if (ht->wake.fd >= 0) close(ht->wake.fd);
    if (ht->timer.fd >= 0) close(ht->timer.fd);
    pthread_mutex_lock(&ht->mu);
    hub_in_t *in = ht->in_head;
    ht->in_head = ht->in_tail = NULL;
    pthread_mutex_unlock(&ht->mu);
    while (in) { /* posted after the thread ended */
        hub_in_t *next = in->next;
        if (in->type == IN_CONN) hub_client_free(in->c);
        if (in->type == IN_FRAME) hub__frame_unref(in->f);
        free(in);
        in = next;
    }
    pthread_mutex_destroy(&ht->mu);
    buf_deinit(&ht->batch);
}

hub_t *hub_start(app_t *app)
{
    int n = app->cfg->ws.threads;
    if (n <= 0) {
        long cores = sysconf(_SC_NPROCESSORS_ONLN);
        n = cores > 0 ? (int)cores : 1;
    }
    hub_t *h = xcalloc(1, sizeof *h);
    h->app = app;
    h->n = n;
    h->t = xcalloc((size_t)n, sizeof *h->t);
    for (int i = 0; i < n; i++) {
        h->t[i].epfd = h->t[i].wake.fd = h->t[i].timer.fd = -1;
    }
    int started = 0;
    for (int i = 0; i < n; i++) {
        int rc = thread_init(h, i);
        if (rc) {
            log_error("hub_start", "hub %d: %s", i, strerror(-rc));
            goto fail;
        }
    }
    for (; started < n; started++) {
        if (pthread_create(&h->t[started].th, NULL, thread_main, &h->t[started]) != 0) {
            log_error("hub_start", "pthread_create failed");
            goto fail;
        }
    }
    log_info("hub_started", "%d hub thread(s), tick %d ms", n, app->cfg->ws.tick_ms);
    return h;
fail:
    for (int i = 0; i < started; i++) {
        hub_in_t *in = xcalloc(1, sizeof *in);
        in->type = IN_STOP;
        post(&h->t[i], in);
        pthread_join(h->t[i].th, NULL);
    }
    for (int i = 0; i < n; i++) thread_deinit(&h->t[i]);
    free(h->t);
    free(h);
    return NULL;
}

void hub_stop(hub_t *h)
{
    if (!h) return;
    for (int i = 0; i < h->n; i++) {
        hub_in_t *in = xcalloc(1, sizeof *in);
        in->type = IN_STOP;
        post(&h->t[i], in);
    }
    for (int i = 0; i < h->n; i++) pthread_join(h->t[i].th, NULL);
    for (int i = 0; i < h->n; i++) thread_deinit(&h->t[i]);
    free(h->t);
    free(h);
}
