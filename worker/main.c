/* place-worker — consumes the job queue; `enqueue <kind>` records and
 * publishes a job; `check` compares Redis's canvas with the rebuild.
 *
 *   place-worker [--config FILE]                     consume until SIGTERM/SIGINT
 *   place-worker [--config FILE] enqueue snapshot    record + publish a job, print its id
 *   place-worker [--config FILE] enqueue retention
 *   place-worker [--config FILE] check               Redis canvas == snapshot + events?
 *
 * Exit codes: 0 done (check: the canvases match); 1 runtime failure (enqueue
 * could not record or publish; check: pixels differ); 2 bad usage or bad
 * configuration; 3 check could not compare (Redis/PostgreSQL unavailable,
 * no canvas). */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "cfg.h"
#include "db.h"
#include "db_jobs.h"
#include "job.h"
#include "log.h"
#include "maint.h"
#include "mq.h"
#include "px.h"
#include "rds.h"

#define MQ_TIMEOUT_MS 5000 /* connect, login, RPCs, publisher confirm */
#define POLL_MS 500        /* longest wait between two looks at the signals */
#define BACKOFF_MIN_MS 250 /* reconnect delays double up to BACKOFF_MAX_MS */
#define BACKOFF_MAX_MS 10000

/* ---------------------------------------------------------------------------
 * Signals: SIGTERM and SIGINT are blocked and read through a signalfd, so no
 * library call is ever interrupted; the loop looks at it between waits. */

typedef struct sigwatch {
    int fd;
    bool stop;
} sigwatch_t;

static int sigwatch_init(sigwatch_t *sw)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    if (sigprocmask(SIG_BLOCK, &set, NULL) != 0) return -errno;
    sw->fd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
    sw->stop = false;
    if (sw->fd < 0) return -errno;
    /* hiredis writes with write(2): a Redis that went away must not kill us */
    signal(SIGPIPE, SIG_IGN);
    return 0;
}

/* Waits up to ms for a stop signal; true once one has arrived. */
static bool sigwatch_wait(sigwatch_t *sw, int ms)
{
    if (sw->stop) return true;
    struct pollfd p = {.fd = sw->fd, .events = POLLIN};
    if (poll(&p, 1, ms) > 0) {
        struct signalfd_siginfo si;
        if (read(sw->fd, &si, sizeof si) == (ssize_t)sizeof si) {
            sw->stop = true;
            log_info("signal", "got %s: finishing", strsignal((int)si.ssi_signo));
        }
    }
    return sw->stop;
}

/* ---------------------------------------------------------------------------
 * Consumer */

typedef struct consumer {
    const cfg_t *cfg;
    sigwatch_t *sw;
    mq_t *mq;
} consumer_t;

/* The job tick: keeps the broker connection alive during a long job and
 * tells the job to stop when a stop signal came or the connection died
 * (its delivery then goes back to the queue anyway). */
static int on_tick(void *arg)
{
    consumer_t *c = arg;
    if (sigwatch_wait(c->sw, 0)) return 1;
    if (mq_keepalive(c->mq) != 0) return 1;
    return 0;
}

static void settle(consumer_t *c, const mq_delivery_t *d, job_verdict_t v)
{
    int rc = 0;
    switch (v) {
    case JOB_ACK:
        rc = mq_ack(c->mq, d->tag);
        break;
    case JOB_REJECT:
        rc = mq_reject(c->mq, d->tag);
        break;
    case JOB_ABANDON:
        /* Stopped half-way: closing the channel hands the delivery back. */
        mq_disconnect(c->mq);
        return;
    case JOB_RETRY:
    default: {
        /* A quorum queue hands a requeued message straight back: a growing
         * pause keeps the attempts from being spent in a few milliseconds.
         * It stays far below the heartbeat timeout; a stop signal cuts it
         * short (the nack still goes out, so the count is right). */
        (void)sigwatch_wait(c->sw, job_retry_delay_ms(c->cfg, d->delivery_count + 1));
        rc = mq_nack(c->mq, d->tag, true);
        break;
    }
    }
    if (rc) log_warn("mq_settle_failed", "%s (the broker will redeliver)", mq_errstr(c->mq));
}

static int consume(const cfg_t *cfg, sigwatch_t *sw)
{
    consumer_t c = {cfg, sw, mq_new(cfg->rabbitmq.url, MQ_TIMEOUT_MS)};
    job_env_t *env = job_env_new(cfg, on_tick, &c);
    int backoff = BACKOFF_MIN_MS;

    while (!sigwatch_wait(sw, 0)) {
        if (!mq_is_connected(c.mq)) {
            int rc = mq_connect(c.mq);
            if (rc == 0) rc = mq_declare_jobs(c.mq);
            if (rc == 0) rc = mq_consume(c.mq, MQ_JOBS_QUEUE, cfg->rabbitmq.prefetch);
            if (rc) {
                log_warn("mq_unavailable", "rabbitmq: %s; retrying in %d ms", mq_errstr(c.mq),
                         backoff);
                mq_disconnect(c.mq);
                if (sigwatch_wait(sw, backoff)) break;
                backoff = backoff * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : backoff * 2;
                continue;
            }
            backoff = BACKOFF_MIN_MS;
            log_info("mq_consuming", "consuming %s, prefetch %d", MQ_JOBS_QUEUE,
                     cfg->rabbitmq.prefetch);
        }

        mq_delivery_t d;
        int rc = mq_next(c.mq, POLL_MS, &d);
        if (rc == PX_ETIMEOUT) continue;
        if (rc) {
            log_warn("mq_lost", "rabbitmq: %s; reconnecting", mq_errstr(c.mq));
            mq_disconnect(c.mq);
            continue;
        }
        job_verdict_t v = job_run(env, d.body, d.len, d.delivery_count);
        settle(&c, &d, v);
        mq_delivery_deinit(&d);
    }

    log_info("worker_stop", "stopped");
    mq_free(c.mq);
    job_env_free(env);
    return 0;
}

/* ---------------------------------------------------------------------------
 * enqueue: the row first (the outbox, marked as published so the api's
 * relays do not publish it too), then the message with a publisher confirm;
 * if RabbitMQ cannot take it, the row is handed to the relays, which publish
 * it once RabbitMQ is back. */

static int enqueue(const cfg_t *cfg, const char *type)
{
    if (strcmp(type, "snapshot") != 0 && strcmp(type, "retention") != 0) {
        fprintf(stderr, "place-worker: unknown job type \"%s\" (known: snapshot, retention)\n",
                type);
        return 2;
    }
    char id[37];
    if (job_new_id(id) != 0) {
        fprintf(stderr, "place-worker: RAND_bytes failed\n");
        return 1;
    }
    db_t *db = db_new(cfg->postgres.url, cfg->postgres.timeout_ms);
    if (db_job_insert_published(db, id, type) != 0) {
        fprintf(stderr, "place-worker: enqueue %s failed: cannot record the job: %s\n", type,
                db_errstr(db));
        db_free(db);
        return 1;
    }
    char *body = job_encode(type, id);
    mq_t *mq = mq_new(cfg->rabbitmq.url, MQ_TIMEOUT_MS);
    int rc = mq_connect(mq);
    if (rc == 0) rc = mq_declare_jobs(mq);
    if (rc == 0)
        rc = mq_publish(mq, MQ_JOBS_EXCHANGE, MQ_JOBS_ROUTING_KEY, body, strlen(body),
                        MQ_TIMEOUT_MS);
    char fields[64];
    snprintf(fields, sizeof fields, "\"job\":\"%s\"", id);
    int result = 0;
    if (rc) {
        /* hand the row over to the api's relay (it publishes with confirms
         * once RabbitMQ is back); a duplicate publish is harmless */
        bool handed = db_job_unpublish(db, id) == 0;
        fprintf(stderr,
                "place-worker: enqueue %s: job %s is recorded but RabbitMQ did not confirm it "
                "(%s); %s\n",
                type, id, mq_errstr(mq),
                handed ? "the api's relay publishes it once RabbitMQ is back"
                       : "and it could not be handed to the api's relay either");
        result = 1;
    } else {
        log_fields(LOG_INFO, "job_enqueued", fields, "%s job published", type);
        printf("%s\n", id);
    }
    mq_free(mq);
    db_free(db);
    free(body);
    return result;
}

/* ---------------------------------------------------------------------------
 * check */

static int check(const cfg_t *cfg)
{
    rds_t *rds = rds_new(cfg);
    db_t *db = db_new(cfg->postgres.url, cfg->postgres.timeout_ms);
    maint_check_result_t res;
    char err[512];
    int rc = maint_check(cfg, rds, db, &res, err, sizeof err);
    int code;
    if (rc) {
        fprintf(stderr, "place-worker: check: %s (%s)\n", err, px_strerror(rc));
        code = 3;
    } else if (res.mismatched == 0) {
        printf("ok: the Redis canvas at seq %lld equals the rebuild (snapshot seq %lld + %zu "
               "events from PostgreSQL + %zu from the stream)\n",
               (long long)res.seq, (long long)res.snapshot_seq, res.db_events, res.stream_events);
        code = 0;
    } else {
        printf("MISMATCH: %zu pixel(s) of the Redis canvas at seq %lld differ from the rebuild "
               "(snapshot seq %lld + %zu events from PostgreSQL + %zu from the stream)\n",
               res.mismatched, (long long)res.seq, (long long)res.snapshot_seq, res.db_events,
               res.stream_events);
        size_t shown = res.mismatched < 20 ? res.mismatched : 20;
        for (size_t i = 0; i < shown; i++)
            printf("  x=%zu y=%zu redis=%u rebuilt=%u\n", res.first[i] % (size_t)cfg->canvas.width,
                   res.first[i] / (size_t)cfg->canvas.width, res.redis_px[i], res.rebuilt_px[i]);
        log_error("check_mismatch", "%zu pixel(s) differ at seq %lld", res.mismatched,
                  (long long)res.seq);
        code = 1;
    }
    rds_free(rds);
    db_free(db);
    return code;
}

/* ---------------------------------------------------------------------------
 * main */

static void usage(FILE *fp)
{
    fprintf(fp, "usage: place-worker [--config FILE]                    consume jobs\n"
                "       place-worker [--config FILE] enqueue snapshot   record and publish a job\n"
                "       place-worker [--config FILE] enqueue retention\n"
                "       place-worker [--config FILE] check              compare Redis's canvas "
                "with the rebuild\n");
}

int main(int argc, char **argv)
{
    const char *config = "config.ini";
    int i = 1;
    for (; i < argc; i++) {
        if (strcmp(argv[i], "--config") == 0 && i + 1 < argc) {
            config = argv[++i];
        } else if (strncmp(argv[i], "--config=", 9) == 0) {
            config = argv[i] + 9;
        } else if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            usage(stdout);
            return 0;
        } else if (argv[i][0] == '-') {
            usage(stderr);
            return 2;
        } else {
            break;
        }
    }
    const char *command = i < argc ? argv[i] : NULL;
    if (command && !((strcmp(command, "enqueue") == 0 && argc - i == 2) ||
                     (strcmp(command, "check") == 0 && argc - i == 1))) {
        usage(stderr);
        return 2;
    }

    /* Block the stop signals first: a SIGTERM that comes while the
     * configuration loads is then read by the loop instead of killing us. */
    sigwatch_t sw = {.fd = -1, .stop = false};
    int src = command ? 0 : sigwatch_init(&sw);

    static cfg_t cfg;
    char err[512];
    if (cfg_load(&cfg, config, NULL, err, sizeof err) != 0) {
        fprintf(stderr, "place-worker: %s\n", err);
        return 2;
    }
    log_level_t level = LOG_INFO;
    if (!log_level_parse(cfg.log.level, &level)) {
        fprintf(stderr, "place-worker: log.level: unknown level \"%s\"\n", cfg.log.level);
        return 2;
    }
    /* cfg.instance is never empty (cfg fills in host:port); the pid tells
     * the workers of one host apart */
    char instance[128];
    snprintf(instance, sizeof instance, "%s/worker-%d", cfg.instance, (int)getpid());
    log_setup(level, command ? cfg.instance : instance);
    log_thread_name("main");

    if (command && strcmp(command, "check") == 0) return check(&cfg);
    if (command) return enqueue(&cfg, argv[i + 1]);

    if (src) {
        log_error("worker_start", "signalfd: %s", px_strerror(src));
        return 1;
    }
    log_info("worker_start", "place-worker starting (canvas %dx%d, %d colours)", cfg.canvas.width,
             cfg.canvas.height, cfg.canvas.palette_len);
    int rc = consume(&cfg, &sw);
    close(sw.fd);
    return rc;
}
