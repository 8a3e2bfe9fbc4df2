/* job — one job message: decode, dispatch by type, decide what becomes of
 * the message, and log the outcome (this is the edge that logs). Owns the
 * worker's Redis and PostgreSQL connections: opened on first use, dropped
 * after a failure and reopened by the next job. Worker main thread only.
 *
 * Messages are JSON objects {"type":"<type>","id":"<uuid>", ...}; the id
 * makes a job idempotent (a redelivery finds its result and does nothing).
 * Types: "snapshot" (snap.h). */
#ifndef PLACE_WORKER_JOB_H
#define PLACE_WORKER_JOB_H

#include <stddef.h>
#include <stdint.h>

#include "cfg.h"
#include "px.h"

/* What the consumer loop does with the message after job_run(). */
typedef enum job_verdict {
    JOB_ACK,    /* done (or nothing to do): ack */
    JOB_RETRY,  /* failed, may succeed later: nack with requeue; the queue's
                   delivery limit dead-letters it after MQ_DELIVERY_LIMIT tries */
    JOB_REJECT, /* can never succeed (bad JSON, unknown type, data that does
                   not fit the configuration): reject, i.e. to the DLQ */
} job_verdict_t;

typedef struct job_env job_env_t;

/* cfg: borrowed, must outlive the env. Connects nothing yet.
 * Returns the env (gives: job_env_free()); never NULL. */
job_env_t *job_env_new(const cfg_t *cfg);
void job_env_free(job_env_t *env); /* closes its connections; NULL is a no-op */

/* Decodes and runs the job in body (borrowed, len bytes). delivery_count
 * (the broker's count of earlier deliveries) only goes into the log.
 * Logs one line with the outcome and returns the verdict. */
job_verdict_t job_run(job_env_t *env, const uint8_t *body, size_t len, long delivery_count);

/* A fresh random (version 4) UUID from OpenSSL's RAND_bytes into out
 * (out, 37 bytes incl. NUL). Returns 0 or PX_EBACKEND if RAND_bytes fails. */
PX_MUST_CHECK int job_new_id(char out[37]);

/* The message for job `type` (borrowed) with id `id` (borrowed), as compact
 * JSON. Returns it (gives: free()); never NULL. */
char *job_encode(const char *type, const char *id);

#endif
