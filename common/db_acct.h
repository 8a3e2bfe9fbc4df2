/* db_acct — accounts, admin audit, settings, rollback planning and the
 * reset snapshot: the SQL behind issue 4's endpoints. Same conventions as
 * db.h (one db_t per thread, parameterised SQL, sticky errstr). */
#ifndef PLACE_DB_ACCT_H
#define PLACE_DB_ACCT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "db.h"
#include "pwhash.h"
#include "px.h"

typedef struct db_user {
    char id[37];
    char username[64];
    char hash[PWHASH_MAX];
    bool admin;
    bool banned;
} db_user_t;


/* Inserts a registered user. *taken = true (and 0 returned) when the
 * username is in use (case-insensitively) or the id already has an account. */
PX_MUST_CHECK int db_user_create(db_t *d, const char *id, const char *username,
                                 const char *hash, bool admin, bool *taken);
/* Looks a user up by name, case-insensitively. PX_ENOTFOUND when none. */
PX_MUST_CHECK int db_user_by_name(db_t *d, const char *username, db_user_t *out);
/* Creates NAME as an admin with hash, or promotes the existing account and
 * sets its password. id (out) = the account's id. */
PX_MUST_CHECK int db_user_make_admin(db_t *d, const char *username, const char *hash,
                                     char id[37]);
/* Marks a user banned or not; a guest (no row) gets a row so the ban is on
 * record. */
PX_MUST_CHECK int db_user_set_banned(db_t *d, const char *id, bool banned);

/* One admin_actions row. target (may be NULL) a user id; details a JSON
 * object text (borrowed). */
PX_MUST_CHECK int db_admin_action(db_t *d, const char *admin_id, const char *type,
                                  const char *target, const char *details);
/* settings(key) = value (JSON text), upserted. */
PX_MUST_CHECK int db_setting_put(db_t *d, const char *key, const char *json_value);

/* settings(key) as JSON text into out. PX_ENOTFOUND when unset. */
PX_MUST_CHECK int db_setting_get(db_t *d, const char *key, char *out, size_t outlen);

/* A pixel to restore after a ban: current (the banned user's) colour and
 * the colour it had before the user's placements. */
typedef struct db_restore {
    int x, y, cur, to;
} db_restore_t;

/* Pixels whose newest event (seq in (after_seq, upto_seq]) is the user's
 * and placed at or after since_ms, each with the colour of the newest
 * earlier event that is not one of those (0 when none). gives: *out
 * (free()), *n. */
PX_MUST_CHECK int db_rollback_plan(db_t *d, const char *user_id, int64_t since_ms,
                                   int64_t after_seq, int64_t upto_seq, db_restore_t **out,
                                   size_t *n);

/* Stores a snapshot row that belongs to no job (the admin reset). png and
 * the zlib canvas borrowed. *id (out). */
PX_MUST_CHECK int db_snapshot_add(db_t *d, int64_t seq, int width, int height,
                                    const uint8_t *png, size_t png_len, const uint8_t *cz,
                                    size_t cz_len, int64_t *id);

#endif
