#include "db_migrate.h"

#include <dirent.h>
#include <errno.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "xalloc.h"

static int is_migration(const char *name)
{
    for (int i = 0; i < 4; i++)
        if (name[i] < '0' || name[i] > '9') return 0;
    size_t n = strlen(name);
    return name[4] == '_' && n > 9 && !strcmp(name + n - 4, ".sql");
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int read_file(const char *path, buf_t *out)
{
    FILE *fp = fopen(path, "rb");
    if (!fp) return -errno;
    char chunk[8192];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, fp)) > 0) buf_append(out, chunk, n);
    int rc = ferror(fp) ? -EIO : 0;
    fclose(fp);
    return rc;
}

/* Runs a statement and reports failure with its message. */
static int run(PGconn *c, const char *sql, int n, const char *const *params, char *err,
               size_t errlen, const char *what)
{
    PGresult *r = n ? PQexecParams(c, sql, n, NULL, params, NULL, NULL, 0) : PQexec(c, sql);
    ExecStatusType st = PQresultStatus(r);
    int ok = st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK;
    if (!ok) snprintf(err, errlen, "%s: %s", what, PQresultErrorMessage(r));
    PQclear(r);
    return ok ? 0 : PX_EBACKEND;
}

int db_migrate(const char *url, const char *dir, const char *app_role, int *applied,
               char *err, size_t errlen)
{
    *applied = 0;
    err[0] = '\0';
    DIR *dp = opendir(dir);
    if (!dp) {
        int e = errno;
        snprintf(err, errlen, "cannot open migrations folder %s: %s", dir, strerror(e));
        return -e;
    }
    char **names = NULL;
    size_t n = 0;
    struct dirent *de;
    while ((de = readdir(dp))) {
        if (!is_migration(de->d_name)) continue;
        names = xreallocarray(names, n + 1, sizeof *names);
        names[n++] = xstrdup(de->d_name);
    }
    closedir(dp);
    qsort(names, n, sizeof *names, cmp_str);

    int rc = 0;
    PGconn *c = PQconnectdb(url);
    if (PQstatus(c) != CONNECTION_OK) {
        snprintf(err, errlen, "cannot connect to %s: %s", url, PQerrorMessage(c));
        rc = PX_EBACKEND;
        goto out;
    }
    PGresult *nr = PQexec(c, "SET client_min_messages = warning");
    PQclear(nr);
    if ((rc = run(c, "SELECT pg_advisory_lock(7406361)", 0, NULL, err, errlen, "lock")) ||
        (rc = run(c,
                  "CREATE TABLE IF NOT EXISTS schema_migrations (version text PRIMARY KEY, "
                  "applied_at timestamptz NOT NULL DEFAULT now())",
                  0, NULL, err, errlen, "schema_migrations")))
        goto out;
    for (size_t i = 0; i < n; i++) {
        const char *p[] = {names[i]};
        PGresult *r = PQexecParams(c, "SELECT 1 FROM schema_migrations WHERE version = $1", 1,
                                   NULL, p, NULL, NULL, 0);
        int done = PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1;
        int bad = PQresultStatus(r) != PGRES_TUPLES_OK;
        PQclear(r);
        if (bad) {
            snprintf(err, errlen, "reading schema_migrations failed: %s", PQerrorMessage(c));
            rc = PX_EBACKEND;
            goto out;
        }
        if (done) continue;
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        buf_t sql;
        buf_init(&sql);
        rc = read_file(path, &sql);
        if (rc) {
            snprintf(err, errlen, "cannot read %s: %s", path, strerror(-rc));
            buf_deinit(&sql);
            goto out;
        }
        const char *role[] = {app_role};
        char what[300];
        snprintf(what, sizeof what, "migration %s", names[i]);
        /* A migration file is trusted code shipped with the program: it is
         * the one place a non-constant string goes to PQexec. */
        rc = run(c, "BEGIN", 0, NULL, err, errlen, what);
        if (!rc)
            rc = run(c, "SELECT set_config('place.app_role', $1, true)", 1, role, err, errlen,
                     what);
        if (!rc) rc = run(c, sql.data ? sql.data : "", 0, NULL, err, errlen, what);
        if (!rc)
            rc = run(c, "INSERT INTO schema_migrations (version) VALUES ($1)", 1, p, err,
                     errlen, what);
        if (!rc) rc = run(c, "COMMIT", 0, NULL, err, errlen, what);
        buf_deinit(&sql);
        if (rc) {
            PGresult *rb = PQexec(c, "ROLLBACK");
            PQclear(rb);
            goto out;
        }
        (*applied)++;
    }
out:
    PQfinish(c);
    for (size_t i = 0; i < n; i++) free(names[i]);
    free(names);
    return rc;
}
