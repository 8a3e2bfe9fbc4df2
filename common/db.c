#include "db.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "buf.h"
#include "proto.h"
#include "xalloc.h"

#define DAYS_CACHED 8

struct db {
    char *url;
    int timeout_ms;
    PGconn *c;
    char errstr[200];
    char sqlstate[6];
    int64_t days[DAYS_CACHED]; /* day numbers whose partition is known to exist */
    int ndays;
    /* the sink's COPY rows, kept between batches: a fresh 256 kB buffer per
     * batch made glibc consolidate its free lists every time */
    buf_t copy;
};

db_t *db_new(const char *url, int timeout_ms)
{
    db_t *d = xcalloc(1, sizeof *d);
    d->url = xstrdup(url);
    d->timeout_ms = timeout_ms;
    buf_init(&d->copy);
    return d;
}

void db_free(db_t *d)
{
    if (!d) return;
    if (d->c) PQfinish(d->c);
    buf_deinit(&d->copy);
    free(d->url);
    free(d);
}

const char *db_errstr(const db_t *d) { return d->errstr; }
const char *db_sqlstate(const db_t *d) { return d->sqlstate; }

static void set_err(db_t *d, const char *what, const char *msg)
{
    snprintf(d->errstr, sizeof d->errstr, "postgres %s: %s", what, msg ? msg : "");
    size_t l = strlen(d->errstr);
    while (l && (d->errstr[l - 1] == '\n' || d->errstr[l - 1] == ' ')) d->errstr[--l] = '\0';
}

PGconn *db_conn(db_t *d)
{
    if (d->c && PQstatus(d->c) == CONNECTION_OK) return d->c;
    if (d->c) {
        PQfinish(d->c);
        d->c = NULL;
    }
    char timeout[16];
    snprintf(timeout, sizeof timeout, "%d", (d->timeout_ms + 999) / 1000);
    const char *keys[] = {"dbname", "connect_timeout", "application_name", NULL};
    const char *vals[] = {d->url, timeout, "place", NULL};
    d->c = PQconnectdbParams(keys, vals, 1);
    if (!d->c || PQstatus(d->c) != CONNECTION_OK) {
        set_err(d, "connect", d->c ? PQerrorMessage(d->c) : "out of memory");
        if (d->c) PQfinish(d->c);
        d->c = NULL;
        d->sqlstate[0] = '\0';
        return NULL;
    }
    char st[48];
    snprintf(st, sizeof st, "SET statement_timeout = %d", d->timeout_ms);
    PGresult *r = PQexec(d->c, st);
    PQclear(r);
    d->ndays = 0;
    return d->c;
}

PGresult *db_exec(db_t *d, const char *sql, int n, const char *const *params)
{
    return db_exec_ex(d, sql, n, params, NULL, NULL, 0);
}

PGresult *db_exec_ex(db_t *d, const char *sql, int n, const char *const *params,
                     const int *lengths, const int *formats, int result_format)
{
    PGconn *c = db_conn(d);
    if (!c) return NULL;
    PGresult *r = PQexecParams(c, sql, n, NULL, params, lengths, formats, result_format);
    ExecStatusType st = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
    if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) {
        d->sqlstate[0] = '\0';
        return r;
    }
    const char *ss = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
    snprintf(d->sqlstate, sizeof d->sqlstate, "%s", ss ? ss : "");
    set_err(d, "query", r ? PQresultErrorMessage(r) : PQerrorMessage(c));
    PQclear(r);
    if (PQstatus(c) != CONNECTION_OK) {
        PQfinish(d->c);
        d->c = NULL;
    }
    return NULL;
}

int db_ping(db_t *d)
{
    PGresult *r = db_exec(d, "SELECT 1", 0, NULL);
    if (!r) return PX_EBACKEND;
    PQclear(r);
    return 0;
}

/* ------------------------------------------------------------------ events */

static int ensure_day(db_t *d, int64_t time_ms)
{
    int64_t day = time_ms / 86400000;
    for (int i = 0; i < d->ndays; i++)
        if (d->days[i] == day) return 0;
    char ts[32];
    proto_time_format(day * 86400000, ts);
    const char *p[] = {ts};
    PGresult *r = db_exec(d, "SELECT place_ensure_partition($1::timestamptz)", 1, p);
    if (!r) return PX_EBACKEND;
    PQclear(r);
    if (d->ndays == DAYS_CACHED) {
        memmove(d->days, d->days + 1, sizeof d->days[0] * (DAYS_CACHED - 1));
        d->ndays--;
    }
    d->days[d->ndays++] = day;
    return 0;
}

static bool data_error(const char *sqlstate)
{
    return sqlstate[0] == '2' && (sqlstate[1] == '2' || sqlstate[1] == '3');
}

int db_events_insert(db_t *d, const canvas_event_t *ev, size_t n, size_t *inserted)
{
    *inserted = 0;
    if (n == 0) return 0;
    for (size_t i = 0; i < n; i++) {
        if (ensure_day(d, ev[i].time_ms)) return PX_EBACKEND;
    }
    buf_t a[7];
    for (int k = 0; k < 7; k++) {
        buf_init(&a[k]);
        buf_reserve(&a[k], n * (k == 0 ? 34 : k == 5 ? 38 : 14) + 2);
        buf_putc(&a[k], '{');
    }
    for (size_t i = 0; i < n; i++) {
        const char *sep = i ? "," : "";
        buf_printf(&a[0], "%s%s", sep, ev[i].id);
        buf_printf(&a[1], "%s%lld", sep, (long long)ev[i].seq);
        buf_printf(&a[2], "%s%d", sep, ev[i].x);
        buf_printf(&a[3], "%s%d", sep, ev[i].y);
        buf_printf(&a[4], "%s%d", sep, ev[i].color);
        buf_printf(&a[5], "%s%s", sep, ev[i].user_id);
        buf_printf(&a[6], "%s%lld", sep, (long long)ev[i].time_ms);
    }
    const char *p[7];
    for (int k = 0; k < 7; k++) {
        buf_putc(&a[k], '}');
        p[k] = a[k].data;
    }
    PGresult *r = db_exec(
        d,
        "INSERT INTO pixel_events (id, seq, x, y, color, user_id, created_at) "
        "SELECT u.id, u.seq, u.x, u.y, u.c, u.uid, "
        "       'epoch'::timestamptz + u.t * interval '1 millisecond' "
        "FROM unnest($1::uuid[], $2::bigint[], $3::int[], $4::int[], $5::smallint[], "
        "            $6::uuid[], $7::bigint[]) AS u(id, seq, x, y, c, uid, t) "
        "ON CONFLICT DO NOTHING",
        7, p);
    for (int k = 0; k < 7; k++) buf_deinit(&a[k]);
    if (!r) return data_error(d->sqlstate) ? PX_EPROTO : PX_EBACKEND;
    *inserted = (size_t)strtoull(PQcmdTuples(r), NULL, 10);
    PQclear(r);
    return 0;
}

/* Records the error of a failed COPY (r may be NULL) and drops a broken
 * connection. */
static int copy_failed(db_t *d, PGconn *c, PGresult *r)
{
    const char *ss = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
    snprintf(d->sqlstate, sizeof d->sqlstate, "%s", ss ? ss : "");
    set_err(d, "copy", r ? PQresultErrorMessage(r) : PQerrorMessage(c));
    PQclear(r);
    while ((r = PQgetResult(c))) PQclear(r);
    if (PQstatus(c) != CONNECTION_OK) {
        PQfinish(d->c);
        d->c = NULL;
        return PX_EBACKEND;
    }
    return data_error(d->sqlstate) ? PX_EPROTO : PX_EBACKEND;
}

int db_events_copy_begin(db_t *d, const canvas_event_t *ev, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (ensure_day(d, ev[i].time_ms)) return PX_EBACKEND;
    }
    PGconn *c = db_conn(d);
    if (!c) return PX_EBACKEND;
    buf_t *b = &d->copy;
    buf_reset(b);
    buf_reserve(b, n * 128 + 1);
    for (size_t i = 0; i < n; i++) { /* every row the sink stores: no printf */
        char ts[32];
        proto_time_format(ev[i].time_ms, ts);
        const int64_t nums[] = {ev[i].seq, ev[i].x, ev[i].y, ev[i].color};
        buf_puts(b, ev[i].id);
        for (size_t k = 0; k < sizeof nums / sizeof nums[0]; k++) {
            buf_putc(b, '\t');
            buf_put_i64(b, nums[k]);
        }
        buf_putc(b, '\t');
        buf_puts(b, ev[i].user_id);
        buf_putc(b, '\t');
        buf_puts(b, ts);
        buf_putc(b, '\n');
    }
    PGresult *r = PQexec(c, "COPY pixel_events (id, seq, x, y, color, user_id, created_at) "
                            "FROM STDIN");
    if (!r || PQresultStatus(r) != PGRES_COPY_IN) return copy_failed(d, c, r);
    PQclear(r);
    int ok = PQputCopyData(c, b->data, (int)b->len) == 1 && PQputCopyEnd(c, NULL) == 1;
    if (!ok) return copy_failed(d, c, PQgetResult(c));
    return 0;
}

int db_events_copy_end(db_t *d, size_t *inserted)
{
    *inserted = 0;
    PGconn *c = d->c;
    if (!c) return PX_EBACKEND;
    PGresult *r = PQgetResult(c);
    if (!r || PQresultStatus(r) != PGRES_COMMAND_OK) return copy_failed(d, c, r);
    *inserted = (size_t)strtoull(PQcmdTuples(r), NULL, 10);
    PQclear(r);
    while ((r = PQgetResult(c))) PQclear(r);
    d->sqlstate[0] = '\0';
    return 0;
}

int db_events_max_seq(db_t *d, int64_t *seq)
{
    PGresult *r = db_exec(d, "SELECT coalesce(max(seq), 0) FROM pixel_events", 0, NULL);
    if (!r) return PX_EBACKEND;
    *seq = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
    PQclear(r);
    return 0;
}

/* ------------------------------------------------------------------ history */

#define HISTORY_COLS                                                                         \
    "seq, x, y, color, user_id::text, "                                                      \
    "(extract(epoch from created_at) * 1000)::bigint"

static int rows_to_json(db_t *d, PGresult *r, json_t **out)
{
    (void)d;
    json_t *arr = json_array();
    int n = PQntuples(r);
    for (int i = 0; i < n; i++) {
        char when[32];
        proto_time_format(strtoll(PQgetvalue(r, i, 5), NULL, 10), when);
        json_array_append_new(
            arr, json_pack("{s:I,s:i,s:i,s:i,s:s,s:s}", "seq",
                           (json_int_t)strtoll(PQgetvalue(r, i, 0), NULL, 10), "x",
                           atoi(PQgetvalue(r, i, 1)), "y", atoi(PQgetvalue(r, i, 2)), "color",
                           atoi(PQgetvalue(r, i, 3)), "userId", PQgetvalue(r, i, 4),
                           "createdAt", when));
    }
    PQclear(r);
    *out = arr;
    return 0;
}

int db_history_pixel(db_t *d, int x, int y, int limit, json_t **out)
{
    char xs[12], ys[12], ls[12];
    snprintf(xs, sizeof xs, "%d", x);
    snprintf(ys, sizeof ys, "%d", y);
    snprintf(ls, sizeof ls, "%d", limit);
    const char *p[] = {xs, ys, ls};
    PGresult *r = db_exec(d,
                          "SELECT " HISTORY_COLS " FROM pixel_events WHERE x = $1 AND y = $2 "
                          "ORDER BY seq DESC LIMIT $3",
                          3, p);
    if (!r) return PX_EBACKEND;
    return rows_to_json(d, r, out);
}

int db_history_user(db_t *d, const char *user_id, int limit, json_t **out)
{
    char ls[12];
    snprintf(ls, sizeof ls, "%d", limit);
    const char *p[] = {user_id, ls};
    PGresult *r = db_exec(d,
                          "SELECT " HISTORY_COLS " FROM pixel_events WHERE user_id = $1 "
                          "ORDER BY seq DESC LIMIT $2",
                          2, p);
    if (!r) return PX_EBACKEND;
    return rows_to_json(d, r, out);
}

int db_history_recent(db_t *d, int limit, json_t **out)
{
    char ls[12];
    snprintf(ls, sizeof ls, "%d", limit);
    const char *p[] = {ls};
    PGresult *r = db_exec(
        d, "SELECT " HISTORY_COLS " FROM pixel_events ORDER BY seq DESC LIMIT $1", 1, p);
    if (!r) return PX_EBACKEND;
    return rows_to_json(d, r, out);
}

/* ------------------------------------------------------------------ rebuild */

int db_events_scan(db_t *d, int64_t after_seq, db_event_fn fn, void *arg)
{
    int64_t last = after_seq;
    for (;;) {
        char ls[24];
        snprintf(ls, sizeof ls, "%lld", (long long)last);
        const char *p[] = {ls};
        PGresult *r = db_exec(d,
                              "SELECT seq, x, y, color, replace(id::text, '-', ''), "
                              "user_id::text, (extract(epoch from created_at) * 1000)::bigint "
                              "FROM pixel_events WHERE seq > $1 ORDER BY seq LIMIT 50000",
                              1, p);
        if (!r) return PX_EBACKEND;
        int n = PQntuples(r);
        for (int i = 0; i < n; i++) {
            canvas_event_t ev;
            memset(&ev, 0, sizeof ev);
            ev.seq = strtoll(PQgetvalue(r, i, 0), NULL, 10);
            ev.x = atoi(PQgetvalue(r, i, 1));
            ev.y = atoi(PQgetvalue(r, i, 2));
            ev.color = atoi(PQgetvalue(r, i, 3));
            snprintf(ev.id, sizeof ev.id, "%s", PQgetvalue(r, i, 4));
            snprintf(ev.user_id, sizeof ev.user_id, "%s", PQgetvalue(r, i, 5));
            ev.time_ms = strtoll(PQgetvalue(r, i, 6), NULL, 10);
            last = ev.seq;
            int rc = fn(arg, &ev);
            if (rc) {
                PQclear(r);
                return rc;
            }
        }
        PQclear(r);
        if (n < 50000) return 0;
    }
}
