/* job — one job message: decode, look the job up in PostgreSQL, run it,
 * record the outcome in its jobs row, decide what becomes of the message,
 * and log (this is the edge that logs). Owns the worker's rds_t and db_t
 * (connected lazily, reconnecting after failures). Worker main thread only.
 *
 * Messages are JSON objects {"type":"<kind>","id":"<uuid>"}: they only wake
 * a worker; the jobs row with that id (sql/0003_jobs.sql) holds the
 * parameters, status, progress and result. A job that is already done or
 * failed is acknowledged without work, and two deliveries of one job never
 * run at once (an advisory lock on its id), so duplicates are harmless.
 * Kinds: "snapshot" (snap.h), "timelapse" (tl.h), "retention" (maint.h). */
#ifndef PLACE_WORKER_JOB_H
#define PLACE_WORKER_JOB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cfg.h"
#include "db.h"
#include "px.h"

/* What the consumer loop does with the message after job_run(). */
typedef enum job_verdict {
    JOB_ACK,     /* done, failed for good (recorded in its row), or nothing to do */
    JOB_RETRY,   /* failed, may succeed later: pause (job_retry_delay_ms), then
                    nack with requeue */
    JOB_REJECT,  /* the message can never be handled (bad JSON, unknown kind,
                    no row for a job that needs one) or the job used up its
                    attempts: reject, i.e. dead-letter it to place.jobs.dlq */
    JOB_ABANDON, /* stopped half-way (shutdown, or the broker connection was
                    lost): settle nothing; the broker redelivers it */
} job_verdict_t;

/* Called by a running job at least every few hundred ms (between frames,
 * rows, ...). Returns 0 to go on, anything else to abandon the job. */
typedef int (*job_tick_fn)(void *arg);

typedef struct job_env job_env_t;

/* cfg: borrowed, must outlive the env. tick (may be NULL) and its arg are
 * kept for the jobs to call. Connects nothing yet.
 * Returns the env (gives: job_env_free()); never NULL. */
job_env_t *job_env_new(const cfg_t *cfg, job_tick_fn tick, void *tick_arg);
void job_env_free(job_env_t *env); /* closes its connections; NULL is a no-op */

/* Decodes and runs the job in body (borrowed, len bytes). delivery_count is
 * the broker's count of earlier deliveries (x-delivery-count): the attempt
 * that makes MQ_DELIVERY_LIMIT marks the job failed and is rejected.
 * Logs one line with the outcome and returns the verdict. */
job_verdict_t job_run(job_env_t *env, const uint8_t *body, size_t len, long delivery_count);

/* Pause before requeueing attempt number `attempt` (1 = the first run
 * failed): [worker] retry_base_ms doubled per attempt, at most 16 s. */
int job_retry_delay_ms(const cfg_t *cfg, long attempt);

/* A fresh random (version 4) UUID from OpenSSL's RAND_bytes into out
 * (out, 37 bytes incl. NUL). Returns 0 or PX_EBACKEND if RAND_bytes fails. */
PX_MUST_CHECK int job_new_id(char out[37]);

/* The message for job `type` (borrowed) with id `id` (borrowed), as compact
 * JSON. Returns it (gives: free()); never NULL. */
char *job_encode(const char *type, const char *id);

#endif
