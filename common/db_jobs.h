/* db_jobs — the SQL of background jobs (sql/0003_jobs.sql): the jobs table
 * (the outbox in front of RabbitMQ), snapshot and timelapse outputs, the
 * event reads a timelapse needs, and retention. Same rules as db.h: one db_t
 * per thread, parameterised statements only, errors in db_errstr(), nothing
 * logs. Every function returns 0 or PX_EBACKEND unless it says otherwise.
 *
 * Job statuses: "queued" (waiting for a worker, also between retries),
 * "running", "done", "failed" (for good). Kinds: "snapshot", "timelapse",
 * "retention". */
#ifndef PLACE_DB_JOBS_H
#define PLACE_DB_JOBS_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "db.h"
#include "px.h"

#define DB_JOBS_CHANNEL "place_jobs" /* NOTIFY channel fired by every new job row */

/* ---- creating jobs (api, place-worker enqueue) ---- */

/* Inserts job `id` (uuid text) of `kind` with params (JSON text; NULL =
 * {}), requested_by (uuid text or NULL). slot >= 0 makes the row unique per
 * (kind, slot): a second insert for the same slot inserts nothing and sets
 * *inserted false (out, may be NULL). All strings borrowed. */
PX_MUST_CHECK int db_job_insert(db_t *d, const char *id, const char *kind, const char *params,
                                int64_t slot, const char *requested_by, bool *inserted);

/* For a publisher that publishes the job itself (place-worker enqueue):
 * inserts it already marked published, so the relays leave it alone; if the
 * publish then fails, db_job_unpublish hands it over to them. */
PX_MUST_CHECK int db_job_insert_published(db_t *d, const char *id, const char *kind);
PX_MUST_CHECK int db_job_unpublish(db_t *d, const char *id);

/* Like db_job_insert (no slot) plus an admin_actions row (admin_id,
 * action_type, details {"jobId": id}) in the same transaction. */
PX_MUST_CHECK int db_job_insert_admin(db_t *d, const char *id, const char *kind,
                                      const char *admin_id, const char *action_type);

/* ---- the outbox relay ---- */

/* Begins a transaction and locks up to max rows not yet published (oldest
 * first, FOR UPDATE SKIP LOCKED so relays of other instances take others).
 * ids (out, max entries of 37 bytes) and kinds (out, 16 bytes each) get
 * them; *n (out) how many. The transaction stays open (even with n = 0):
 * end it with db_jobs_publish_end(). */
PX_MUST_CHECK int db_jobs_publish_begin(db_t *d, int max, char (*ids)[37], char (*kinds)[16],
                                        int *n);
/* Records that RabbitMQ confirmed job `id` (borrowed). */
PX_MUST_CHECK int db_job_mark_published(db_t *d, const char *id);
/* Commits (commit true) or rolls back the relay's transaction. */
PX_MUST_CHECK int db_jobs_publish_end(db_t *d, bool commit);

/* A connection of its own that LISTENs on DB_JOBS_CHANNEL, so a relay
 * wakes as soon as a job row is committed anywhere. url borrowed (copied).
 * gives: db_listener_free. Does not connect. */
typedef struct db_listener db_listener_t;
db_listener_t *db_listener_new(const char *url, int timeout_ms);
void db_listener_free(db_listener_t *l); /* NULL is a no-op */

/* (Re)connects and LISTENs if needed, then waits up to timeout_ms for a
 * notification or for wake_fd (>= 0, e.g. an eventfd; not read here) to
 * become readable. Returns 1 when notified or woken, 0 on timeout,
 * PX_EBACKEND when there is no connection (it still waited, on wake_fd
 * alone). */
int db_listener_wait(db_listener_t *l, int wake_fd, int timeout_ms);

/* ---- running jobs (worker) ---- */

typedef struct db_job {
    char id[37];
    char kind[16];
    char status[12]; /* as stored before this call changed it */
    double progress;
    int attempts; /* including the run this call started, if any */
    char *params; /* JSON text (gives: free() via db_job_deinit) */
    char *error;  /* NULL when none (likewise) */
    char *result; /* JSON text or NULL (likewise) */
    int64_t created_ms, updated_ms;
} db_job_t;

void db_job_deinit(db_job_t *j); /* frees the strings; safe on a zeroed job */

/* Reads job `id` (borrowed). PX_ENOTFOUND when there is none. */
PX_MUST_CHECK int db_job_get(db_t *d, const char *id, db_job_t *out);

/* Marks job `id` running and counts the attempt, unless it is finished:
 * returns 0 with *out the row (status = the status before: "queued" or
 * "running" when this call started it, "done"/"failed" when it did
 * nothing); PX_ENOTFOUND when there is no such row. */
PX_MUST_CHECK int db_job_start(db_t *d, const char *id, db_job_t *out);

/* Progress (0..1) of a running job. */
PX_MUST_CHECK int db_job_progress(db_t *d, const char *id, double progress);

/* After a failed run: back to "queued" with the error (final false), or
 * "failed" for good (final true). err borrowed. */
PX_MUST_CHECK int db_job_failed(db_t *d, const char *id, const char *err, bool final);

/* Marks the job done with result (JSON text, borrowed, or NULL). */
PX_MUST_CHECK int db_job_done(db_t *d, const char *id, const char *result);

/* Session-level advisory lock on the job id, so two deliveries of one job
 * (a duplicate publish) never run at once: *got tells whether this
 * connection now holds it. A dropped connection releases it. */
PX_MUST_CHECK int db_job_lock(db_t *d, const char *id, bool *got);
PX_MUST_CHECK int db_job_unlock(db_t *d, const char *id);

/* ---- snapshots ---- */

/* Id of the snapshot stored by job `job_id`, PX_ENOTFOUND when none. */
PX_MUST_CHECK int db_snapshot_by_job(db_t *d, const char *job_id, int64_t *id);

/* Marks snapshot job `job_id` (borrowed) done with {"snapshotId": id}. */
PX_MUST_CHECK int db_snapshot_job_done(db_t *d, const char *job_id, int64_t id);

typedef struct db_snapshot_row {
    const char *job_id; /* borrowed, uuid text */
    int64_t seq;
    int width, height;
    const uint8_t *png; /* borrowed */
    size_t png_len;
    const uint8_t *canvas_z; /* borrowed: zlib of the raw canvas */
    size_t canvas_z_len;
} db_snapshot_row_t;

/* In one transaction: inserts the snapshot (nothing if the job already
 * stored one) and marks job row->job_id done with {"snapshotId": id}.
 * *id (out) the snapshot's id, *inserted whether this call added it. */
PX_MUST_CHECK int db_snapshot_store(db_t *d, const db_snapshot_row_t *row, int64_t *id,
                                    bool *inserted);

/* Snapshots newest first: up to limit of them with id < before (before <= 0:
 * from the newest), as a JSON array of {id, seq, width, height, sizeBytes,
 * createdAt} (gives: *out, json_decref); *next (out) the id to pass as
 * `before` for the next page, or 0 when there is no more. */
PX_MUST_CHECK int db_snapshot_list(db_t *d, int limit, int64_t before, json_t **out, int64_t *next);

/* The PNG of snapshot `id`: *png (gives: free()), *len. PX_ENOTFOUND. */
PX_MUST_CHECK int db_snapshot_png(db_t *d, int64_t id, uint8_t **png, size_t *len);

/* The newest snapshot of a width x height canvas with seq <= max_seq
 * (INT64_MAX: any): *canvas (gives: free(), width*height bytes) and *seq.
 * PX_ENOTFOUND when there is none; PX_EPROTO when its canvas_z is corrupt. */
PX_MUST_CHECK int db_snapshot_at_or_before(db_t *d, int width, int height, int64_t max_seq,
                                           uint8_t **canvas, int64_t *seq);

/* ---- timelapses ---- */

typedef struct db_timelapse_row {
    const char *job_id;  /* borrowed */
    const uint8_t *apng; /* borrowed */
    size_t len;
    int frames, fps, width, height;
} db_timelapse_row_t;

/* In one transaction: stores the APNG (nothing if one is there) and marks
 * the job done with {"frames","width","height","sizeBytes"}. */
PX_MUST_CHECK int db_timelapse_store(db_t *d, const db_timelapse_row_t *row);

/* The APNG of timelapse job `job_id`: *data (gives: free()), *len.
 * PX_ENOTFOUND when none is stored. */
PX_MUST_CHECK int db_timelapse_apng(db_t *d, const char *job_id, uint8_t **data, size_t *len);

/* ---- events, for replays ---- */

/* Largest seq of an event placed at or before time_ms (0 when none). */
PX_MUST_CHECK int db_events_seq_at(db_t *d, int64_t time_ms, int64_t *seq);

/* Smallest seq in pixel_events (0 when empty). */
PX_MUST_CHECK int db_events_min_seq(db_t *d, int64_t *seq);

/* Calls fn for each event with seq > after_seq placed at or before
 * until_ms, in seq order, reading in chunks; fn returns 0 to go on,
 * anything else stops the scan and is returned. */
PX_MUST_CHECK int db_events_scan_range(db_t *d, int64_t after_seq, int64_t until_ms, db_event_fn fn,
                                       void *arg);

/* A canvas reset (POST /api/v1/admin/reset-canvas): the seq it took (no
 * event has it) and when it happened, from its admin_actions row. */
typedef struct db_reset {
    int64_t seq, time_ms;
} db_reset_t;

/* The resets with seq > after_seq done at or before until_ms (INT64_MAX: any
 * time), in seq order: *out (gives: free(); NULL when none), *n. */
PX_MUST_CHECK int db_resets_range(db_t *d, int64_t after_seq, int64_t until_ms, db_reset_t **out,
                                  size_t *n);

/* ---- retention ---- */

/* Drops pixel_events partitions that end at or before cutoff_ms (never
 * one with events newer than the newest snapshot: see the SQL function).
 * *dropped (gives: json_decref) is the array of partition names dropped. */
PX_MUST_CHECK int db_retention_events(db_t *d, int64_t cutoff_ms, json_t **dropped);

/* Deletes snapshots created before cutoff_ms, always keeping the newest
 * one of each canvas size. *deleted (out) how many. */
PX_MUST_CHECK int db_retention_snapshots(db_t *d, int64_t cutoff_ms, int64_t *deleted);

/* Deletes finished (done/failed) jobs, with their timelapse outputs,
 * finished before cutoff_ms. *deleted (out) how many. */
PX_MUST_CHECK int db_retention_jobs(db_t *d, int64_t cutoff_ms, int64_t *deleted);

#endif
