#include "db_acct.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "xalloc.h"

int db_user_create(db_t *d, const char *id, const char *username, const char *hash, bool admin,
                   bool *taken)
{
    *taken = false;
    const char *p[] = {id, username, hash, admin ? "admin" : "user"};
    /* a guest that registers keeps its id; a banned guest's row (is_guest,
     * no username) becomes the account and stays banned */
    PGresult *r = db_exec(d,
                          "INSERT INTO users (id, username, password_hash, role, is_guest) "
                          "VALUES ($1::uuid, $2, $3, $4, false) "
                          "ON CONFLICT (id) DO UPDATE SET username = EXCLUDED.username, "
                          "password_hash = EXCLUDED.password_hash, is_guest = false, "
                          "updated_at = now() WHERE users.username IS NULL",
                          4, p);
    if (!r) {
        if (!strcmp(db_sqlstate(d), "23505")) { /* unique_violation: name taken */
            *taken = true;
            return 0;
        }
        return PX_EBACKEND;
    }
    if (!strcmp(PQcmdTuples(r), "0")) *taken = true; /* the id has an account already */
    PQclear(r);
    return 0;
}

int db_user_by_name(db_t *d, const char *username, db_user_t *out)
{
    const char *p[] = {username};
    PGresult *r = db_exec(d,
                          "SELECT id, username, coalesce(password_hash, ''), role = 'admin', "
                          "is_banned FROM users WHERE lower(username) = lower($1)",
                          1, p);
    if (!r) return PX_EBACKEND;
    if (PQntuples(r) != 1) {
        PQclear(r);
        return PX_ENOTFOUND;
    }
    memset(out, 0, sizeof *out);
    snprintf(out->id, sizeof out->id, "%s", PQgetvalue(r, 0, 0));
    snprintf(out->username, sizeof out->username, "%s", PQgetvalue(r, 0, 1));
    snprintf(out->hash, sizeof out->hash, "%s", PQgetvalue(r, 0, 2));
    out->admin = PQgetvalue(r, 0, 3)[0] == 't';
    out->banned = PQgetvalue(r, 0, 4)[0] == 't';
    PQclear(r);
    return 0;
}

int db_user_make_admin(db_t *d, const char *username, const char *hash, char id[37])
{
    const char *p[] = {username, hash};
    PGresult *r = db_exec(d,
                          "UPDATE users SET role = 'admin', password_hash = $2, updated_at = now() "
                          "WHERE lower(username) = lower($1) RETURNING id",
                          2, p);
    if (!r) return PX_EBACKEND;
    if (PQntuples(r) == 1) {
        snprintf(id, 37, "%s", PQgetvalue(r, 0, 0));
        PQclear(r);
        return 0;
    }
    PQclear(r);
    r = db_exec(d,
                "INSERT INTO users (id, username, password_hash, role) "
                "VALUES (gen_random_uuid(), $1, $2, 'admin') RETURNING id",
                2, p);
    if (!r) return PX_EBACKEND;
    snprintf(id, 37, "%s", PQgetvalue(r, 0, 0));
    PQclear(r);
    return 0;
}

int db_user_set_banned(db_t *d, const char *id, bool banned)
{
    const char *p[] = {id, banned ? "true" : "false"};
    PGresult *r = db_exec(d,
                          "INSERT INTO users (id, is_guest, is_banned) VALUES ($1::uuid, true, $2) "
                          "ON CONFLICT (id) DO UPDATE SET is_banned = EXCLUDED.is_banned, "
                          "updated_at = now()",
                          2, p);
    if (!r) return PX_EBACKEND;
    PQclear(r);
    return 0;
}

int db_admin_action(db_t *d, const char *admin_id, const char *type, const char *target,
                    const char *details)
{
    const char *p[] = {admin_id, type, target, details ? details : "{}"};
    PGresult *r = db_exec(d,
                          "INSERT INTO admin_actions (admin_user_id, action_type, target_user_id, "
                          "details) VALUES ($1::uuid, $2, $3::uuid, $4::jsonb)",
                          4, p);
    if (!r) return PX_EBACKEND;
    PQclear(r);
    return 0;
}

int db_setting_put(db_t *d, const char *key, const char *json_value)
{
    const char *p[] = {key, json_value};
    PGresult *r = db_exec(d,
                          "INSERT INTO settings (key, value) VALUES ($1, $2::jsonb) "
                          "ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, "
                          "updated_at = now()",
                          2, p);
    if (!r) return PX_EBACKEND;
    PQclear(r);
    return 0;
}

int db_setting_get(db_t *d, const char *key, char *out, size_t outlen)
{
    const char *p[] = {key};
    PGresult *r = db_exec(d, "SELECT value::text FROM settings WHERE key = $1", 1, p);
    if (!r) return PX_EBACKEND;
    int rc = PX_ENOTFOUND;
    if (PQntuples(r) == 1) {
        snprintf(out, outlen, "%s", PQgetvalue(r, 0, 0));
        rc = 0;
    }
    PQclear(r);
    return rc;
}

int db_rollback_plan(db_t *d, const char *user_id, int64_t since_ms, int64_t after_seq,
                     int64_t upto_seq, db_restore_t **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    char since[24], after[24], upto[24];
    snprintf(since, sizeof since, "%lld", (long long)since_ms);
    snprintf(after, sizeof after, "%lld", (long long)after_seq);
    snprintf(upto, sizeof upto, "%lld", (long long)upto_seq);
    const char *p[] = {user_id, since, after, upto};
    /* "theirs" = the user's events in the window; for each pixel they
     * touched, if the newest event is theirs, restore the newest event that
     * is not theirs (0, the blank colour, when there is none) */
    PGresult *r = db_exec(
        d,
        "WITH w AS (SELECT to_timestamp($2::bigint / 1000.0) AS since), "
        "touched AS (SELECT DISTINCT x, y FROM pixel_events, w WHERE user_id = $1::uuid "
        "  AND created_at >= w.since AND seq > $3::bigint AND seq <= $4::bigint), "
        "newest AS (SELECT DISTINCT ON (e.x, e.y) e.x, e.y, e.user_id, e.color, e.created_at "
        "  FROM pixel_events e JOIN touched t ON e.x = t.x AND e.y = t.y "
        "  WHERE e.seq > $3::bigint AND e.seq <= $4::bigint ORDER BY e.x, e.y, e.seq DESC) "
        "SELECT n.x, n.y, n.color, coalesce((SELECT p.color FROM pixel_events p, w "
        "  WHERE p.x = n.x AND p.y = n.y AND p.seq > $3::bigint AND p.seq <= $4::bigint "
        "  AND NOT (p.user_id = $1::uuid AND p.created_at >= w.since) "
        "  ORDER BY p.seq DESC LIMIT 1), 0) "
        "FROM newest n, w WHERE n.user_id = $1::uuid AND n.created_at >= w.since",
        4, p);
    if (!r) return PX_EBACKEND;
    int rows = PQntuples(r);
    db_restore_t *v = rows ? xcalloc((size_t)rows, sizeof *v) : NULL;
    for (int i = 0; i < rows; i++) {
        v[i].x = atoi(PQgetvalue(r, i, 0));
        v[i].y = atoi(PQgetvalue(r, i, 1));
        v[i].cur = atoi(PQgetvalue(r, i, 2));
        v[i].to = atoi(PQgetvalue(r, i, 3));
    }
    PQclear(r);
    *out = v;
    *n = (size_t)rows;
    return 0;
}

int db_snapshot_add(db_t *d, int64_t seq, int width, int height, const uint8_t *png,
                      size_t png_len, const uint8_t *cz, size_t cz_len, int64_t *id)
{
    char seq_s[24], w_s[16], h_s[16], size_s[24];
    snprintf(seq_s, sizeof seq_s, "%lld", (long long)seq);
    snprintf(w_s, sizeof w_s, "%d", width);
    snprintf(h_s, sizeof h_s, "%d", height);
    snprintf(size_s, sizeof size_s, "%zu", png_len);
    const char *values[6] = {seq_s, w_s, h_s, (const char *)png, (const char *)cz, size_s};
    int lengths[6] = {0, 0, 0, (int)png_len, (int)cz_len, 0};
    int formats[6] = {0, 0, 0, 1, 1, 0};
    PGresult *r = db_exec_ex(d,
                             "INSERT INTO canvas_snapshots (seq, width, height, png, canvas_z, "
                             "size_bytes) VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
                             6, values, lengths, formats, 0);
    if (!r) return PX_EBACKEND;
    *id = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
    PQclear(r);
    return 0;
}
