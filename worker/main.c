/* place-worker — consumes the job queue; `enqueue <type>` publishes a job.
 *
 *   place-worker [--config FILE]                    consume until SIGTERM/SIGINT
 *   place-worker [--config FILE] enqueue snapshot   publish one job and exit
 *
 * Exit codes: 0 done, 1 runtime failure (enqueue could not publish, ...),
 * 2 bad usage or bad configuration. */
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
#include "job.h"
#include "log.h"
#include "mq.h"
#include "px.h"

#define MQ_TIMEOUT_MS 5000 /* connect, login, RPCs, publisher confirm */
#define POLL_MS 500        /* longest wait between two looks at the signals */
#define BACKOFF_MIN_MS 250 /* reconnect delays double up to BACKOFF_MAX_MS */
#define BACKOFF_MAX_MS 10000
#define RETRY_DELAY_MAX_MS 16000 /* pause before requeueing a failed job */

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

static void settle(mq_t *mq, const mq_delivery_t *d, job_verdict_t v, sigwatch_t *sw)
{
    int rc;
    switch (v) {
    case JOB_ACK: rc = mq_ack(mq, d->tag); break;
    case JOB_REJECT: rc = mq_reject(mq, d->tag); break;
    case JOB_RETRY:
    default: {
        /* A quorum queue hands a requeued message straight back; a short,
         * growing pause keeps MQ_DELIVERY_LIMIT tries from being spent in a
         * few milliseconds on an outage. It stays far below the heartbeat
         * timeout, and a stop signal cuts it short. */
        long n = d->delivery_count < 5 ? d->delivery_count : 5;
        int delay = 1000 << n;
        if (delay > RETRY_DELAY_MAX_MS) delay = RETRY_DELAY_MAX_MS;
        (void)sigwatch_wait(sw, delay);
        rc = mq_nack(mq, d->tag, true);
        break;
    }
    }
    if (rc) log_warn("mq_settle_failed", "%s (the broker will redeliver)", mq_errstr(mq));
}

static int consume(const cfg_t *cfg, sigwatch_t *sw)
{
    mq_t *mq = mq_new(cfg->rabbitmq.url, MQ_TIMEOUT_MS);
    job_env_t *env = job_env_new(cfg);
    int backoff = BACKOFF_MIN_MS;

    while (!sigwatch_wait(sw, 0)) {
        if (!mq_is_connected(mq)) {
            int rc = mq_connect(mq);
            if (rc == 0) rc = mq_declare_jobs(mq);
            if (rc == 0) rc = mq_consume(mq, MQ_JOBS_QUEUE, cfg->rabbitmq.prefetch);
            if (rc) {
                log_warn("mq_unavailable", "rabbitmq: %s; retrying in %d ms", mq_errstr(mq),
                         backoff);
                mq_disconnect(mq);
                if (sigwatch_wait(sw, backoff)) break;
                backoff = backoff * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : backoff * 2;
                continue;
            }
            backoff = BACKOFF_MIN_MS;
            log_info("mq_consuming", "consuming %s, prefetch %d", MQ_JOBS_QUEUE,
                     cfg->rabbitmq.prefetch);
        }

        mq_delivery_t d;
        int rc = mq_next(mq, POLL_MS, &d);
        if (rc == PX_ETIMEOUT) continue;
        if (rc) {
            log_warn("mq_lost", "rabbitmq: %s; reconnecting", mq_errstr(mq));
            mq_disconnect(mq);
            continue;
        }
        /* The job runs to completion even if a stop signal arrives meanwhile. */
        job_verdict_t v = job_run(env, d.body, d.len, d.delivery_count);
        settle(mq, &d, v, sw);
        mq_delivery_deinit(&d);
    }

    log_info("worker_stop", "stopped");
    mq_free(mq);
    job_env_free(env);
    return 0;
}

/* ---------------------------------------------------------------------------
 * enqueue */

static int enqueue(const cfg_t *cfg, const char *type)
{
    if (strcmp(type, "snapshot") != 0) {
        fprintf(stderr, "place-worker: unknown job type \"%s\" (known: snapshot)\n", type);
        return 2;
    }
    char id[37];
    if (job_new_id(id) != 0) {
        fprintf(stderr, "place-worker: RAND_bytes failed\n");
        return 1;
    }
    char *body = job_encode(type, id);
    mq_t *mq = mq_new(cfg->rabbitmq.url, MQ_TIMEOUT_MS);
    int rc = mq_connect(mq);
    if (rc == 0) rc = mq_declare_jobs(mq);
    if (rc == 0)
        rc = mq_publish(mq, MQ_JOBS_EXCHANGE, MQ_JOBS_ROUTING_KEY, body, strlen(body),
                        MQ_TIMEOUT_MS);
    if (rc) {
        fprintf(stderr, "place-worker: enqueue %s failed: %s\n", type, mq_errstr(mq));
    } else {
        char fields[64];
        snprintf(fields, sizeof fields, "\"job\":\"%s\"", id);
        log_fields(LOG_INFO, "job_enqueued", fields, "%s job published", type);
        printf("%s\n", id);
    }
    mq_free(mq);
    free(body);
    return rc ? 1 : 0;
}

/* ---------------------------------------------------------------------------
 * main */

static void usage(FILE *fp)
{
    fprintf(fp, "usage: place-worker [--config FILE]                  consume jobs\n"
                "       place-worker [--config FILE] enqueue snapshot publish a snapshot job\n");
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
    if (command && !(strcmp(command, "enqueue") == 0 && argc - i == 2)) {
        usage(stderr);
        return 2;
    }

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
    char instance[128];
    if (cfg.instance[0]) {
        snprintf(instance, sizeof instance, "%s", cfg.instance);
    } else {
        char host[64] = "localhost";
        gethostname(host, sizeof host - 1);
        snprintf(instance, sizeof instance, "%s:worker-%d", host, (int)getpid());
    }
    log_setup(level, instance);
    log_thread_name("main");

    if (command) return enqueue(&cfg, argv[i + 1]);

    sigwatch_t sw;
    int rc = sigwatch_init(&sw);
    if (rc) {
        log_error("worker_start", "signalfd: %s", px_strerror(rc));
        return 1;
    }
    log_info("worker_start", "place-worker starting (canvas %dx%d, %d colours)", cfg.canvas.width,
             cfg.canvas.height, cfg.canvas.palette_len);
    rc = consume(&cfg, &sw);
    close(sw.fd);
    return rc;
}
