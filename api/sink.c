#include "sink.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "db.h"
#include "log.h"
#include "proto.h"
#include "rds.h"
#include "xalloc.h"
#include "metrics.h"

struct sink {
    app_t *app;
    pthread_t th;
    _Atomic bool stopping;
    _Atomic int64_t lag_ms;
    _Atomic uint64_t stored;
    _Atomic uint64_t batches;
    rds_t *rds;
    db_t *db;
    int64_t stop_deadline;
    /* batch being stored */
    canvas_event_t *ev;
    char (*ids)[48];    /* stream id of ev[i] */
    char (*all_ids)[48]; /* every entry of the batch (incl. poison) */
    size_t n, n_all, cap;
    bool seq_checked; /* canvas:seq raised to the PostgreSQL maximum */
    bool group_ok;    /* the consumer group exists (unknown again after NOGROUP) */
    /* the next batch, read from Redis while PostgreSQL stored this one
     * (only when reading new entries; NULL otherwise) */
    bool prefetch;
    redisReply *next;
    int64_t linger_until; /* [sink] linger_ms: no new read before (mono ms) */
};

int64_t sink_lag_ms(const sink_t *s) { return atomic_load(&s->lag_ms); }
uint64_t sink_stored(const sink_t *s) { return atomic_load(&s->stored); }
uint64_t sink_batches(const sink_t *s) { return atomic_load(&s->batches); }

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* True when the thread should give up on the current work: stopping and past
 * the flush deadline. */
static bool give_up(sink_t *s)
{
    return atomic_load(&s->stopping) && app_mono_ms() > s->stop_deadline;
}

static void reserve(sink_t *s, size_t n)
{
    if (n <= s->cap) return;
    s->cap = n;
    s->ev = xreallocarray(s->ev, n, sizeof *s->ev);
    s->ids = xreallocarray(s->ids, n, sizeof *s->ids);
    s->all_ids = xreallocarray(s->all_ids, n, sizeof *s->all_ids);
}

static void dead_letter(sink_t *s, const char *id, const char *reason)
{
    redisReply *r = rds_command(s->rds, "XADD %s * source %s reason %s", RDS_KEY_DEAD, id, reason);
    if (r) freeReplyObject(r);
    log_error("sink_dead_letter", "stream entry %s moved to %s: %s", id, RDS_KEY_DEAD, reason);
}

/* Collects the entries of an XREADGROUP / XAUTOCLAIM entry array. */
static void collect(sink_t *s, redisReply *entries)
{
    s->n = s->n_all = 0;
    reserve(s, entries->elements);
    for (size_t i = 0; i < entries->elements; i++) {
        redisReply *e = entries->element[i];
        if (e->type != REDIS_REPLY_ARRAY || e->elements != 2 ||
            e->element[0]->type != REDIS_REPLY_STRING)
            continue;
        snprintf(s->all_ids[s->n_all++], sizeof s->all_ids[0], "%s", e->element[0]->str);
        redisReply *f = e->element[1];
        const char *names[16], *vals[16];
        size_t lens[16], np = 0;
        if (f->type == REDIS_REPLY_ARRAY)
            for (size_t j = 0; j + 1 < f->elements && np < 16; j += 2, np++) {
                names[np] = f->element[j]->str ? f->element[j]->str : "";
                vals[np] = f->element[j + 1]->str ? f->element[j + 1]->str : "";
                lens[np] = f->element[j + 1]->len;
            }
        if (f->type != REDIS_REPLY_ARRAY ||
            proto_event_from_fields(names, vals, lens, np, &s->ev[s->n])) {
            dead_letter(s, e->element[0]->str, "malformed entry");
            continue;
        }
        snprintf(s->ids[s->n], sizeof s->ids[0], "%s", e->element[0]->str);
        s->n++;
    }
}

/* Reads up to a batch of entries never delivered to any consumer, waiting
 * at most block_ms for the first (0 = answer at once). */
static redisReply *read_new(sink_t *s, int block_ms)
{
    const cfg_t *cfg = s->app->cfg;
    if (block_ms > 0)
        return rds_command(s->rds, "XREADGROUP GROUP %s %s COUNT %d BLOCK %d STREAMS %s >",
                           RDS_GROUP, cfg->instance, cfg->sink.batch, block_ms, RDS_KEY_EVENTS);
    return rds_command(s->rds, "XREADGROUP GROUP %s %s COUNT %d STREAMS %s >", RDS_GROUP,
                       cfg->instance, cfg->sink.batch, RDS_KEY_EVENTS);
}

/* Reads the next batch of new entries (without blocking) into s->next when
 * the loop is reading new entries and none is waiting yet. They are
 * delivered to this consumer now and stored after the current batch, in
 * order; if the process dies first they are in its pending list. */
static void prefetch(sink_t *s)
{
    if (!s->prefetch || s->next) return;
    redisReply *r = read_new(s, 0);
    if (r && r->type == REDIS_REPLY_ARRAY && r->elements) s->next = r;
    else if (r) freeReplyObject(r);
}

/* Stores s->ev: one statement; on a data error row by row so that only the
 * bad rows are dead-lettered. Retries backend errors with capped backoff
 * until stored or give_up(). Returns 0 when every entry may be acked. */
static int store(sink_t *s)
{
    int backoff = 100;
    for (;;) {
        size_t inserted = 0;
        /* COPY first (about twice the rows/s of the INSERT); a batch it
         * refuses (an entry stored before and redelivered, or bad data)
         * goes through the idempotent INSERT, row by row if need be. While
         * PostgreSQL stores the rows, the next batch is read from Redis. */
        int rc = s->n ? db_events_copy_begin(s->db, s->ev, s->n) : 0;
        if (rc == 0 && s->n) {
            prefetch(s);
            rc = db_events_copy_end(s->db, &inserted);
        }
        if (rc == PX_EPROTO) rc = db_events_insert(s->db, s->ev, s->n, &inserted);
        if (rc == 0) {
            atomic_fetch_add(&s->stored, inserted);
            if (s->n) {
                atomic_fetch_add(&s->batches, 1);
                atomic_store(&s->lag_ms, app_now_ms() - s->ev[s->n - 1].time_ms);
            }
            return 0;
        }
        if (rc == PX_EPROTO) {
            for (size_t i = 0; i < s->n; i++) {
                for (;;) {
                    int r1 = db_events_insert(s->db, &s->ev[i], 1, &inserted);
                    if (r1 == 0) {
                        atomic_fetch_add(&s->stored, inserted);
                        break;
                    }
                    if (r1 == PX_EPROTO) {
                        dead_letter(s, s->ids[i], db_errstr(s->db));
                        break;
                    }
                    if (give_up(s)) return PX_EBACKEND;
                    sleep_ms(backoff);
                    backoff = backoff < 5000 ? backoff * 2 : 5000;
                }
            }
            return 0;
        }
        metrics_backend_error(METRICS_POSTGRES);
        log_warn("sink_retry", "insert of %zu events failed, retrying in %d ms: %s", s->n,
                 backoff, db_errstr(s->db));
        if (give_up(s)) return PX_EBACKEND;
        sleep_ms(backoff);
        backoff = backoff < 5000 ? backoff * 2 : 5000;
    }
}

static int cmp_id(const char *a, const char *b)
{
    unsigned long long ma = strtoull(a, NULL, 10), mb = strtoull(b, NULL, 10);
    if (ma != mb) return ma < mb ? -1 : 1;
    const char *da = strchr(a, '-'), *db = strchr(b, '-');
    unsigned long long sa = da ? strtoull(da + 1, NULL, 10) : 0;
    unsigned long long sb = db ? strtoull(db + 1, NULL, 10) : 0;
    return (sa > sb) - (sa < sb);
}

/* XACK the batch, then trim everything below both the batch's last id and
 * the oldest entry still pending for any consumer. */
static int ack_and_trim(sink_t *s)
{
    if (!s->n_all) return 0;
    const char **argv = xcalloc(s->n_all + 3, sizeof *argv);
    argv[0] = "XACK";
    argv[1] = RDS_KEY_EVENTS;
    argv[2] = RDS_GROUP;
    const char *max = s->all_ids[0];
    for (size_t i = 0; i < s->n_all; i++) {
        argv[3 + i] = s->all_ids[i];
        if (cmp_id(s->all_ids[i], max) > 0) max = s->all_ids[i];
    }
    redisReply *r = rds_commandargv(s->rds, (int)s->n_all + 3, argv, NULL);
    free(argv);
    if (!r || r->type == REDIS_REPLY_ERROR) {
        if (r) freeReplyObject(r);
        return PX_EBACKEND; /* redelivered later; the insert is idempotent */
    }
    freeReplyObject(r);
    char trim[48];
    snprintf(trim, sizeof trim, "%s", max);
    r = rds_command(s->rds, "XPENDING %s %s", RDS_KEY_EVENTS, RDS_GROUP);
    if (r && r->type == REDIS_REPLY_ARRAY && r->elements >= 2 &&
        r->element[1]->type == REDIS_REPLY_STRING && cmp_id(r->element[1]->str, trim) < 0)
        snprintf(trim, sizeof trim, "%s", r->element[1]->str);
    if (r) freeReplyObject(r);
    r = rds_command(s->rds, "XTRIM %s MINID ~ %s", RDS_KEY_EVENTS, trim);
    if (r) freeReplyObject(r);
    return 0;
}

static int process(sink_t *s, redisReply *entries)
{
    collect(s, entries);
    if (!s->n_all) return 0;
    if (store(s)) return PX_EBACKEND; /* not acked: stays pending, redelivered */
    return ack_and_trim(s);
}

/* Makes sure canvas:seq is not behind PostgreSQL (after Redis came back
 * older than the record) and that the consumer group exists. */
static int prepare(sink_t *s)
{
    if (!s->group_ok) {
        redisReply *r = rds_command(s->rds, "XGROUP CREATE %s %s 0 MKSTREAM", RDS_KEY_EVENTS,
                                    RDS_GROUP);
        if (!r) return PX_EBACKEND;
        /* BUSYGROUP: it exists; another error shows again on the read */
        s->group_ok = r->type != REDIS_REPLY_ERROR || (r->str && strstr(r->str, "BUSYGROUP"));
        freeReplyObject(r);
    }
    if (!s->seq_checked) {
        int64_t pgmax, seq;
        if (db_events_max_seq(s->db, &pgmax) == 0 && rds_seq_floor(s->rds, pgmax, &seq) == 0) {
            s->seq_checked = true;
            if (seq == pgmax && pgmax > 0)
                log_info("sink_seq", "canvas:seq at %lld (PostgreSQL maximum)", (long long)seq);
        }
    }
    return 0;
}

static redisReply *entries_of(redisReply *r, bool autoclaim)
{
    if (!r || r->type != REDIS_REPLY_ARRAY || r->elements == 0) return NULL;
    if (autoclaim) return r->elements >= 2 ? r->element[1] : NULL;
    redisReply *st = r->element[0]; /* [key, entries] */
    if (st->type != REDIS_REPLY_ARRAY || st->elements != 2) return NULL;
    return st->element[1];
}

static void *run(void *arg)
{
    sink_t *s = arg;
    const cfg_t *cfg = s->app->cfg;
    log_thread_name("sink");
    bool own_pending = true; /* first read our own PEL (after a restart) */
    int64_t next_claim = 0;
    int backoff = 100;
    for (;;) {
        bool stopping = atomic_load(&s->stopping);
        if (stopping && app_mono_ms() > s->stop_deadline) break;
        if (prepare(s)) {
            if (stopping) break;
            log_warn("sink_redis", "%s; retrying in %d ms", rds_errstr(s->rds), backoff);
            sleep_ms(backoff);
            backoff = backoff < 5000 ? backoff * 2 : 5000;
            continue;
        }
        backoff = 100;
        redisReply *r;
        bool claim = false, fresh = false; /* fresh: new entries, not our PEL or a claim */
        if (s->next) { /* read while the last batch was being stored */
            r = s->next;
            s->next = NULL;
            fresh = true;
        } else if (own_pending) {
            r = rds_command(s->rds, "XREADGROUP GROUP %s %s COUNT %d STREAMS %s 0", RDS_GROUP,
                            cfg->instance, cfg->sink.batch, RDS_KEY_EVENTS);
        } else if (app_mono_ms() >= next_claim) {
            claim = true;
            next_claim = app_mono_ms() + cfg->sink.claim_idle_ms / 2;
            r = rds_command(s->rds, "XAUTOCLAIM %s %s %s %d 0-0 COUNT %d", RDS_KEY_EVENTS,
                            RDS_GROUP, cfg->instance, cfg->sink.claim_idle_ms, cfg->sink.batch);
        } else {
            /* the last batch was small: let the next one gather ([sink]
             * linger_ms). One entry a batch cost six round trips and a
             * commit each: at 1,000 placements/s a tenth of the api's CPU */
            int64_t now = app_mono_ms();
            if (!stopping && s->linger_until > now) sleep_ms((int)(s->linger_until - now));
            r = read_new(s, stopping ? 0 : cfg->sink.block_ms);
            fresh = true;
        }
        int64_t read_at = app_mono_ms();
        if (!r || r->type == REDIS_REPLY_ERROR) {
            log_warn("sink_redis", "%s", r ? r->str : rds_errstr(s->rds));
            bool nogroup = r && r->str && strstr(r->str, "NOGROUP");
            if (nogroup) s->group_ok = false; /* Redis lost it (restart, FLUSHALL) */
            if (r) freeReplyObject(r);
            if (!nogroup) sleep_ms(200);
            continue;
        }
        redisReply *entries = entries_of(r, claim);
        size_t got = entries ? entries->elements : 0;
        /* a full batch: more are waiting, read the next while this one is
         * stored; a smaller one: the next read waits for linger_ms */
        bool full = got >= (size_t)cfg->sink.batch;
        s->prefetch = fresh && !stopping && full;
        s->linger_until = got && !full ? read_at + cfg->sink.linger_ms : 0;
        if (got) {
            if (claim) log_info("sink_claim", "claimed %zu pending entries", got);
            if (process(s, entries)) {
                freeReplyObject(r);
                continue; /* give_up or Redis trouble: loop re-checks */
            }
        }
        freeReplyObject(r);
        if (own_pending && !full) own_pending = false;
        if (stopping && !claim && got == 0) break; /* drained */
    }
    return NULL;
}

sink_t *sink_start(app_t *app)
{
    sink_t *s = xcalloc(1, sizeof *s);
    s->app = app;
    s->rds = rds_new(app->cfg);
    s->db = db_new(app->cfg->postgres.url, app->cfg->postgres.timeout_ms);
    if (pthread_create(&s->th, NULL, run, s) != 0) {
        log_error("sink_start", "cannot start the sink thread");
        rds_free(s->rds);
        db_free(s->db);
        free(s);
        return NULL;
    }
    return s;
}

void sink_stop(sink_t *s)
{
    if (!s) return;
    s->stop_deadline = app_mono_ms() + s->app->cfg->sink.flush_timeout_ms;
    atomic_store(&s->stopping, true);
    pthread_join(s->th, NULL);
    log_info("sink_stopped", "stored %llu events", (unsigned long long)sink_stored(s));
    if (s->next) freeReplyObject(s->next); /* still pending: read again after a restart */
    rds_free(s->rds);
    db_free(s->db);
    free(s->ev);
    free(s->ids);
    free(s->all_ids);
    free(s);
}
