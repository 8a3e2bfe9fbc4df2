#include "jobs.h"

#include <errno.h>
#include <jansson.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "db.h"
#include "db_jobs.h"
#include "log.h"
#include "mq.h"
#include "proto.h"
#include "xalloc.h"

#define MQ_TIMEOUT_MS 5000 /* connect, RPCs, each publisher confirm */
#define BACKOFF_MIN_MS 250
#define BACKOFF_MAX_MS 5000

struct jobs {
    app_t *app;
    pthread_t th;
    int efd; /* written by jobs_stop to wake the thread */
    _Atomic bool stopping;
    db_t *db;
    mq_t *mq;
    db_listener_t *listener;
    int64_t last_slot; /* periodic snapshot slot already inserted */
    int64_t retry_at;  /* monotonic ms before which nothing is retried */
    int backoff;
    bool mq_down_logged, db_down_logged;
};

/* ------------------------------------------------------------------ helpers */

static void down(jobs_t *j, bool *logged, const char *event, const char *what, const char *err)
{
    if (!*logged)
        log_warn(event, "%s: %s; jobs wait in PostgreSQL, retrying with backoff", what, err);
    *logged = true;
    j->retry_at = app_mono_ms() + j->backoff;
    j->backoff = j->backoff * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : j->backoff * 2;
}

static void up(jobs_t *j, bool *logged, const char *event, const char *what)
{
    if (*logged) log_info(event, "%s is back", what);
    *logged = false;
    j->backoff = BACKOFF_MIN_MS;
}

/* The message that wakes a worker: {"type":kind,"id":id} (worker/job.h). */
static char *message(const char *kind, const char *id, size_t *len)
{
    json_t *m = json_pack("{s:s,s:s}", "type", kind, "id", id);
    char *s = m ? json_dumps(m, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(m);
    if (!s) abort(); /* OOM only */
    *len = strlen(s);
    return s;
}

/* ------------------------------------------------------------------ periodic */

static void periodic_snapshot(jobs_t *j)
{
    int interval = j->app->cfg->worker.snapshot_interval_s;
    if (interval <= 0) return;
    int64_t slot = app_now_ms() / 1000 / interval;
    if (slot == j->last_slot) return;
    unsigned char b[16];
    char id[37];
    if (RAND_bytes(b, sizeof b) != 1) return;
    proto_uuid_format(b, id);
    bool inserted = false;
    if (db_job_insert(j->db, id, "snapshot", "{\"periodic\":true}", slot, NULL, &inserted) != 0) {
        down(j, &j->db_down_logged, "jobs_db_down", "postgres", db_errstr(j->db));
        return;
    }
    j->last_slot = slot;
    if (inserted)
        log_info("snapshot_scheduled", "periodic snapshot job %s (every %d s, slot %lld)", id,
                 interval, (long long)slot);
}

/* ------------------------------------------------------------------ publish */

/* Publishes pending rows until none is left or something fails. */
static void publish_pending(jobs_t *j)
{
    char ids[JOBS_BATCH][37], kinds[JOBS_BATCH][16];
    for (;;) {
        if (atomic_load(&j->stopping)) return;
        int n = 0;
        if (db_jobs_publish_begin(j->db, JOBS_BATCH, ids, kinds, &n) != 0) {
            down(j, &j->db_down_logged, "jobs_db_down", "postgres", db_errstr(j->db));
            return;
        }
        up(j, &j->db_down_logged, "jobs_db_up", "postgres");
        if (n == 0) {
            if (db_jobs_publish_end(j->db, true) != 0)
                down(j, &j->db_down_logged, "jobs_db_down", "postgres", db_errstr(j->db));
            return;
        }
        if (!mq_is_connected(j->mq)) {
            int rc = mq_connect(j->mq);
            if (rc == 0) rc = mq_declare_jobs(j->mq);
            if (rc) {
                down(j, &j->mq_down_logged, "jobs_mq_down", "rabbitmq", mq_errstr(j->mq));
                mq_disconnect(j->mq);
                if (db_jobs_publish_end(j->db, false) != 0)
                    log_debug("jobs_rollback", "%s", db_errstr(j->db));
                return;
            }
        }
        int done = 0;
        bool failed = false;
        for (int i = 0; i < n && !failed; i++) {
            size_t len;
            char *body = message(kinds[i], ids[i], &len);
            int rc =
                mq_publish(j->mq, MQ_JOBS_EXCHANGE, MQ_JOBS_ROUTING_KEY, body, len, MQ_TIMEOUT_MS);
            free(body);
            if (rc) {
                down(j, &j->mq_down_logged, "jobs_mq_down", "rabbitmq", mq_errstr(j->mq));
                failed = true;
            } else if (db_job_mark_published(j->db, ids[i]) != 0) {
                /* confirmed but not recorded: the next round publishes it
                 * again, which the worker takes as a duplicate */
                down(j, &j->db_down_logged, "jobs_db_down", "postgres", db_errstr(j->db));
                failed = true;
            } else {
                done++;
                log_debug("job_published", "%s job %s published", kinds[i], ids[i]);
            }
        }
        if (db_jobs_publish_end(j->db, true) != 0) {
            down(j, &j->db_down_logged, "jobs_db_down", "postgres", db_errstr(j->db));
            return;
        }
        if (failed) return;
        up(j, &j->mq_down_logged, "jobs_mq_up", "rabbitmq");
        if (done < JOBS_BATCH) return;
    }
}

/* ------------------------------------------------------------------ thread */

static void *run(void *arg)
{
    jobs_t *j = arg;
    log_thread_name("jobs");
    while (!atomic_load(&j->stopping)) {
        int64_t now = app_mono_ms();
        if (now >= j->retry_at) {
            periodic_snapshot(j);
            if (app_mono_ms() >= j->retry_at) publish_pending(j);
        }
        int timeout = JOBS_POLL_MS;
        int64_t left = j->retry_at - app_mono_ms();
        if (left > 0 && left < timeout) timeout = (int)left;
        int interval = j->app->cfg->worker.snapshot_interval_s;
        if (interval > 0) {
            int64_t ms = app_now_ms();
            int64_t next = (ms / 1000 / interval + 1) * interval * 1000LL - ms;
            if (next < timeout) timeout = (int)next + 1;
        }
        /* a NOTIFY, jobs_stop (efd) or the timeout; without PostgreSQL it
         * still sleeps, on efd alone */
        (void)db_listener_wait(j->listener, j->efd, timeout);
    }
    return NULL;
}

/* Frees what jobs_start made; the thread is not running (any more). */
static void jobs_free(jobs_t *j)
{
    mq_free(j->mq);
    db_free(j->db);
    db_listener_free(j->listener);
    close(j->efd);
    free(j);
}

jobs_t *jobs_start(app_t *app)
{
    jobs_t *j = xcalloc(1, sizeof *j);
    j->app = app;
    j->last_slot = -1;
    j->backoff = BACKOFF_MIN_MS;
    j->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (j->efd < 0) {
        log_error("jobs_start", "eventfd: %s", strerror(errno));
        free(j);
        return NULL;
    }
    j->db = db_new(app->cfg->postgres.url, app->cfg->postgres.timeout_ms);
    j->mq = mq_new(app->cfg->rabbitmq.url, MQ_TIMEOUT_MS);
    j->listener = db_listener_new(app->cfg->postgres.url, app->cfg->postgres.timeout_ms);
    int rc = pthread_create(&j->th, NULL, run, j);
    if (rc) {
        log_error("jobs_start", "pthread_create: %s", strerror(rc));
        jobs_free(j);
        return NULL;
    }
    return j;
}

void jobs_stop(jobs_t *j)
{
    if (!j) return;
    atomic_store(&j->stopping, true);
    uint64_t one = 1;
    if (write(j->efd, &one, sizeof one) < 0) {
        /* the thread still wakes within JOBS_POLL_MS */
    }
    pthread_join(j->th, NULL);
    jobs_free(j);
}
