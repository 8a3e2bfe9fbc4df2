/* db — libpq wrapper, one db_t per thread (never shared). Connects lazily,
 * reconnects after a broken connection on the next call. Sticky error string
 * (db_errstr); never logs. SQL lives here and in db_migrate.c only, always
 * parameterised. */
#ifndef PLACE_DB_H
#define PLACE_DB_H

#include <jansson.h>
#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "canvas.h"
#include "px.h"

typedef struct db db_t;

/* gives: db_free. url borrowed (copied). Does not connect. */
db_t *db_new(const char *url, int timeout_ms);
void db_free(db_t *d);
const char *db_errstr(const db_t *d);
/* SQLSTATE of the last failed statement ("" when none / connection error). */
const char *db_sqlstate(const db_t *d);

/* Connected PGconn (borrowed, valid until the next db_ call that fails), or
 * NULL with errstr set. */
PGconn *db_conn(db_t *d);

/* Runs one parameterised statement (text params, n of them, NULL = SQL
 * NULL). gives: the PGresult (PQclear) when it succeeded, else NULL with
 * errstr and sqlstate set. */
PGresult *db_exec(db_t *d, const char *sql, int n, const char *const *params);
/* db_exec with binary parameters: lengths/formats (borrowed, n entries, or
 * NULL for all text) as in PQexecParams; result_format 1 asks for binary
 * columns (bytea without the hex escaping), 0 for text. */
PGresult *db_exec_ex(db_t *d, const char *sql, int n, const char *const *params,
                     const int *lengths, const int *formats, int result_format);

PX_MUST_CHECK int db_ping(db_t *d);

/* Inserts events (borrowed) in one statement, idempotent on (seq, created_at),
 * creating day partitions as needed. Returns 0, PX_EPROTO when the data
 * itself is refused (SQLSTATE class 22 or 23: retrying cannot help), or
 * PX_EBACKEND (connection / server trouble: retry later). *inserted = rows
 * actually new. */
PX_MUST_CHECK int db_events_insert(db_t *d, const canvas_event_t *ev, size_t n,
                                   size_t *inserted);

/* The fast path of the event sink: the same rows as db_events_insert in one
 * COPY ... FROM STDIN (text format), all or nothing, in two halves so the
 * caller can work while PostgreSQL stores the rows. _begin sends the COPY
 * and every row (n > 0) and returns without waiting; _end waits for the
 * result (*inserted = n). After a _begin that returned 0, call _end before
 * any other use of d. Not idempotent: a row already stored (a redelivered
 * entry) fails the whole COPY with SQLSTATE 23505 and PX_EPROTO, like any
 * data error, and nothing is inserted; the caller then falls back to
 * db_events_insert. Both return 0, PX_EPROTO or PX_EBACKEND as
 * db_events_insert. */
PX_MUST_CHECK int db_events_copy_begin(db_t *d, const canvas_event_t *ev, size_t n);
PX_MUST_CHECK int db_events_copy_end(db_t *d, size_t *inserted);

/* Largest seq in pixel_events (0 when empty). */
PX_MUST_CHECK int db_events_max_seq(db_t *d, int64_t *seq);

/* History as a JSON array of {seq,x,y,color,userId,createdAt}, newest first.
 * gives: *out (json_decref). user_id borrowed (uuid text). */
PX_MUST_CHECK int db_history_pixel(db_t *d, int x, int y, int limit, json_t **out);
PX_MUST_CHECK int db_history_user(db_t *d, const char *user_id, int limit, json_t **out);
PX_MUST_CHECK int db_history_recent(db_t *d, int limit, json_t **out);

/* Calls fn for each event with seq > after_seq in seq order, reading in
 * chunks. fn returns 0 to continue. */
typedef int (*db_event_fn)(void *arg, const canvas_event_t *ev);
PX_MUST_CHECK int db_events_scan(db_t *d, int64_t after_seq, db_event_fn fn, void *arg);

#endif
