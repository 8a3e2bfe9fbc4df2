/* jobs — the outbox relay thread of an api instance.
 *
 * Handlers (and `place-worker enqueue`) only insert rows into the jobs table
 * and answer at once. This thread publishes every row not yet published to
 * RabbitMQ (exchange place.jobs) with publisher confirms, then sets its
 * published_at; rows are locked FOR UPDATE SKIP LOCKED, so the relays of
 * several instances share the work instead of doubling it. It waits on
 * PostgreSQL's NOTIFY place_jobs (a trigger fires it for every new row),
 * with a poll every JOBS_POLL_MS as a fallback, so a job is published within
 * milliseconds. While RabbitMQ (or PostgreSQL) is down it retries with
 * capped backoff and the rows wait: a request never fails or blocks
 * because of RabbitMQ.
 *
 * With [worker] snapshot_interval_s > 0 it also inserts one snapshot job per
 * interval: the row is keyed by the interval's number (jobs.slot, unique),
 * so however many instances run, each interval gets exactly one.
 *
 * The thread owns its own db_t and mq_t. */
#ifndef PLACE_API_JOBS_H
#define PLACE_API_JOBS_H

#include "app.h"

#define JOBS_POLL_MS 1000
#define JOBS_BATCH 50

typedef struct jobs jobs_t;

/* Starts the relay thread. Returns it (gives: jobs_stop()); NULL when the
 * thread cannot be started (logged). app: borrowed, must outlive it. */
jobs_t *jobs_start(app_t *app);

/* Wakes the thread, waits for it to finish what it is publishing (bounded
 * by the RabbitMQ timeouts) and frees it. NULL is a no-op. */
void jobs_stop(jobs_t *j);

#endif
